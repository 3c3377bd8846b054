"""Alembic migrations of the monitoring database (``resources/monitoring_schema.py`` runs them)."""
