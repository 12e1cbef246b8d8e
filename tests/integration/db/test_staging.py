"""Staging: migrations build it, the database refuses raw payload rewrites, re-ingest is a no-op."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.db import migrate
from shared.db.models import (
    Base,
    ProcessingStatus,
    RawBinanceData,
    RawBinancePositionSnapshot,
    RawFireblocksData,
    RawFireblocksPositionSnapshot,
)

RAW = [RawBinanceData, RawFireblocksData]
SNAPSHOTS = [RawBinancePositionSnapshot, RawFireblocksPositionSnapshot]


def _insert_raw(connection, model, data_source_id, source_raw_id="t-1", payload=None):
    statement = (
        insert(model)
        .values(
            data_source_id=data_source_id,
            record_type="spot_trade",
            source_raw_id=source_raw_id,
            raw_payload=payload or {"id": 1, "qty": "0.00012000"},
        )
        .on_conflict_do_nothing(index_elements=["data_source_id", "record_type", "source_raw_id"])
        .returning(model.id)
    )
    return connection.execute(statement).scalar()


def test_staging_rows_belong_to_a_data_source(engine):
    with pytest.raises(DBAPIError, match="foreign key"):
        with engine.begin() as connection:
            _insert_raw(connection, RawBinanceData, uuid.uuid4())


def test_schemas_and_tables_exist(engine):
    with engine.connect() as connection:
        schemas = set(connection.execute(text("SELECT nspname FROM pg_namespace")).scalars())
        tables = set(
            connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'staging'")
            ).scalars()
        )
    assert {"staging", "canonical"} <= schemas
    assert tables == {
        "ingestion_cursors",
        "known_symbols",
        "stream_coverage",
        "raw_binance_data",
        "raw_binance_position_snapshot",
        "raw_fireblocks_data",
        "raw_fireblocks_position_snapshot",
    }


def test_models_and_migrations_agree(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, kind, _parent: (
                    kind != "schema" or name in ("staging", "canonical")
                ),
            },
        )
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.parametrize("model", RAW)
def test_raw_payload_update_is_refused_by_the_database(engine, model, make_data_source):
    source = make_data_source()
    with engine.begin() as connection:
        row = _insert_raw(connection, model, source)
    for change in (
        {"raw_payload": {"id": 1, "qty": "999"}},
        {"source_raw_id": "t-2"},
        {"record_type": "deposit"},
        {"data_source_id": make_data_source()},
    ):
        with pytest.raises(DBAPIError, match="raw provider data is immutable"):
            with engine.begin() as connection:
                connection.execute(update(model).where(model.id == row).values(**change))
    # Even raw SQL, bypassing every model, cannot do it.
    with pytest.raises(DBAPIError, match="raw provider data is immutable"):
        with engine.begin() as connection:
            connection.execute(
                text(f"UPDATE staging.{model.__tablename__} SET raw_payload = '{{}}'::jsonb")
            )
    with engine.connect() as connection:
        payload = connection.execute(select(model.raw_payload).where(model.id == row)).scalar()
    assert payload == {"id": 1, "qty": "0.00012000"}


@pytest.mark.parametrize("model", RAW)
def test_processing_status_may_change_and_touches_updated_at(engine, model, make_data_source):
    source = make_data_source()
    with engine.begin() as connection:
        row = _insert_raw(connection, model, source)
        before = connection.execute(select(model.updated_at).where(model.id == row)).scalar()
    with engine.begin() as connection:
        connection.execute(
            update(model)
            .where(model.id == row)
            .values(processing_status=ProcessingStatus.FAILED, processing_error="unknown side")
        )
    with engine.connect() as connection:
        status, error, after = connection.execute(
            select(model.processing_status, model.processing_error, model.updated_at).where(
                model.id == row
            )
        ).one()
    assert (status, error) == (ProcessingStatus.FAILED, "unknown side")
    assert after > before


@pytest.mark.parametrize("model", RAW)
def test_reingesting_a_record_is_a_no_op(engine, model, make_data_source):
    source = make_data_source()
    with engine.begin() as connection:
        first = _insert_raw(connection, model, source)
        again = _insert_raw(connection, model, source, payload={"id": 1, "qty": "changed"})
        count = connection.execute(
            select(func.count()).select_from(model).where(model.data_source_id == source)
        ).scalar()
    assert first is not None and again is None and count == 1
    # Without ON CONFLICT the unique key refuses the duplicate outright.
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            RawBinanceData.__table__.insert().values(
                data_source_id=source,
                record_type="spot_trade",
                source_raw_id="dup",
                raw_payload={},
            )
        )
        connection.execute(
            RawBinanceData.__table__.insert().values(
                data_source_id=source,
                record_type="spot_trade",
                source_raw_id="dup",
                raw_payload={},
            )
        )


@pytest.mark.parametrize("model", SNAPSHOTS)
def test_snapshot_balances_are_immutable(engine, model, make_data_source):
    with engine.begin() as connection:
        row = connection.execute(
            model.__table__.insert()
            .values(
                data_source_id=make_data_source(),
                account_type="spot",
                snapshot_timestamp=func.now(),
                balances=[{"asset": "BTC", "free": "1.5"}],
            )
            .returning(model.id)
        ).scalar()
    with pytest.raises(DBAPIError, match="raw provider data is immutable"):
        with engine.begin() as connection:
            connection.execute(
                update(model)
                .where(model.id == row)
                .values(balances=[{"asset": "BTC", "free": "2"}])
            )
    with engine.begin() as connection:  # soft delete stays possible
        connection.execute(update(model).where(model.id == row).values(deleted_at=func.now()))


def test_migrations_downgrade_and_upgrade_cleanly(fresh_database):
    engine = create_engine(fresh_database())
    try:
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.head()
        migrate.downgrade(engine, "base")
        assert migrate.current(engine) is None
        with engine.connect() as connection:
            assert (
                connection.execute(
                    text("SELECT count(*) FROM pg_namespace WHERE nspname = 'staging'")
                ).scalar()
                == 0
            )
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.head()
    finally:
        engine.dispose()
