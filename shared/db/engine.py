"""The engine (plain URL locally, Cloud SQL connector in GCP) and the unit-of-work session."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from shared.config import ConfigurationError, Settings, get_settings

_connector: Any = None


def make_engine(settings: Settings) -> Engine:
    """An engine for `settings`: DATABASE_URL when given, else the Cloud SQL Python Connector."""
    if settings.database_url:
        # A bounded connect timeout: a health check must answer 503, not hang.
        return create_engine(
            settings.database_url, pool_pre_ping=True, pool_size=5, connect_args={"timeout": 10}
        )
    if not settings.instance_connection_name:
        raise ConfigurationError(
            "DATABASE_URL: is required (or INSTANCE_CONNECTION_NAME in GCP); "
            "`make serve` starts an embedded PostgreSQL when it is unset"
        )
    return create_engine(
        "postgresql+pg8000://",
        creator=_cloud_sql_creator(settings),
        # Cloud Functions serve one request at a time per instance: a small pool is enough.
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=True,
    )


def _cloud_sql_creator(settings: Settings) -> Any:
    # Imported and constructed only here: the Connector calls google.auth.default() and starts a
    # background thread, which must never happen locally.
    from google.cloud.sql.connector import Connector, IPTypes, RefreshStrategy

    global _connector
    if _connector is None:
        _connector = Connector(
            ip_type=IPTypes.PRIVATE if settings.db_private_ip else IPTypes.PUBLIC,
            # Serverless CPU is throttled between requests; refresh certificates on demand.
            refresh_strategy=RefreshStrategy.LAZY,
        )
    options: dict[str, Any] = {"user": settings.db_user, "db": settings.db_name}
    if settings.db_iam_auth:
        options["enable_iam_auth"] = True
    else:
        options["password"] = settings.db_pass

    def connect() -> Any:
        return _connector.connect(settings.instance_connection_name, "pg8000", **options)

    return connect


@functools.cache
def get_engine() -> Engine:
    """The process-wide engine, created on first use."""
    return make_engine(get_settings())


@functools.cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    with _session_factory().begin() as session:
        yield session


def ping(engine: Engine | None = None) -> None:
    """Round-trip to the database; raises whatever the driver raises."""
    with (engine or get_engine()).connect() as connection:
        connection.execute(text("SELECT 1"))
