"""CLI command groups; each module defines a Typer ``app`` and imports heavy libraries lazily."""
