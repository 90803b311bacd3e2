"""Datasets: ABAW annotation parsing, feature caches, clip datasets, synthetic data."""
