"""Reusable layers shared by every preset (one implementation each)."""
