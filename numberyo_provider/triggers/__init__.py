"""Airflow layer: see the package docstring."""
