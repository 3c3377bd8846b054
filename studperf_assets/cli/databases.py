"""The databases a PostgreSQL server holds for studperf, created once and idempotently.

In AWS one RDS instance holds three: Dagster's storage (the instance's initial database),
the MLflow backend and the monitoring ``batch_metrics``. RDS creates only the first, so the
CD pipeline runs ``studperf init-db`` as a one-off task after ``terraform apply``. The URL
carries no password: libpq reads ``PGPASSWORD``, which ECS injects from Secrets Manager.
"""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text

DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ensure_databases(server_url: str, names: tuple[str, ...] | list[str]) -> list[str]:
    """Create each missing database on the server ``server_url`` connects to; return the
    names it created (an empty list on a second run)."""
    for name in names:
        _check_name(name)
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE
    created = []
    try:
        with engine.connect() as connection:
            quote = connection.dialect.identifier_preparer.quote_identifier
            for name in names:
                exists = connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if exists is None:
                    connection.execute(text(f"CREATE DATABASE {quote(name)}"))
                    created.append(name)
    finally:
        engine.dispose()
    return created


def _check_name(name: str) -> None:
    if not DATABASE_NAME.match(name):
        raise ValueError(
            f"database name {name!r} must be lower-case letters, digits and _ (at most 63)"
        )
