"""A throwaway, migrated database for one benchmark: on TEST_DATABASE_URL's server or embedded."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def bench_database() -> Iterator[str]:
    """The URL of a new database, migrated to head; dropped (and any server stopped) after."""
    from shared.db import migrate

    server = os.environ.get("TEST_DATABASE_URL")
    embedded = None
    if not server:
        from infra.local.postgres import EmbeddedPostgres

        embedded = EmbeddedPostgres(ROOT / ".local" / "bench-postgres")
        server = embedded.start()
    name = f"coinfrs_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if embedded is not None:
            embedded.stop()
