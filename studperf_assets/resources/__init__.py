"""Dagster resources: the model store (local folder or S3) and tracking configuration."""
