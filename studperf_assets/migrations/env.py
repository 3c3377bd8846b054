"""Alembic's environment for the monitoring database: always given a connection (and the
lock around it) by ``monitoring_schema.ensure_schema``; never run with a URL of its own."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
