"""Alembic environment: migrates the connection it is handed, or the configured database."""

from __future__ import annotations

from alembic import context

from shared.db.models import Base

target_metadata = Base.metadata
SCHEMAS = ("staging", "canonical")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_schemas=True,
        # Our schemas only: public holds nothing of ours but alembic_version.
        include_name=lambda name, kind, _parent: kind != "schema" or name in SCHEMAS,
        version_table_schema="public",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from shared.db.engine import get_engine

    with get_engine().connect() as connection:
        _run(connection)
        connection.commit()
