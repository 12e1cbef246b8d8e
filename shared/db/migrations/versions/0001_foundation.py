"""Foundation: schemas staging and canonical, the staging tables, immutability guards.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RAW_TABLES = ("raw_binance_data", "raw_fireblocks_data")
SNAPSHOT_TABLES = ("raw_binance_position_snapshot", "raw_fireblocks_position_snapshot")

# Columns that hold what the provider said (or where it came from): fixed forever once written.
RAW_IMMUTABLE = ("data_source_id", "record_type", "source_raw_id", "raw_payload", "ingested_at")
SNAPSHOT_IMMUTABLE = (
    "data_source_id",
    "account_type",
    "sub_account_id",
    "snapshot_timestamp",
    "balances",
    "ingested_at",
)


def _base_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _guard(table: str, columns: tuple[str, ...]) -> None:
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns)
    op.execute(
        f"""
        CREATE FUNCTION staging.{table}_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {changed} THEN
                RAISE EXCEPTION 'staging.{table}: raw provider data is immutable (row %)', OLD.id
                    USING ERRCODE = 'raise_exception',
                          HINT = 'only processing_status, processing_error and processed_at may change';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER {table}_immutable BEFORE UPDATE ON staging.{table}
            FOR EACH ROW EXECUTE FUNCTION staging.{table}_immutable();
        """
    )


def _touch(schema: str, table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON {schema}.{table} "
        "FOR EACH ROW EXECUTE FUNCTION public.coinfrs_touch_updated_at()"
    )


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS staging")
    op.execute("CREATE SCHEMA IF NOT EXISTS canonical")
    op.execute(
        """
        CREATE FUNCTION public.coinfrs_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END $$;
        """
    )
    status = postgresql.ENUM(
        "pending", "processed", "failed", "skipped", name="processing_status", schema="staging"
    )
    status.create(op.get_bind())

    for table in RAW_TABLES:
        op.create_table(
            table,
            *_base_columns(),
            sa.Column("data_source_id", sa.Uuid(), nullable=False),
            sa.Column("record_type", sa.String(64), nullable=False),
            sa.Column("source_raw_id", sa.String(256), nullable=False),
            sa.Column("raw_payload", postgresql.JSONB(), nullable=False),
            sa.Column(
                "ingested_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            ),
            sa.Column(
                "processing_status",
                postgresql.ENUM(name="processing_status", schema="staging", create_type=False),
                server_default="pending",
                nullable=False,
            ),
            sa.Column("processing_error", sa.Text(), nullable=True),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            sa.UniqueConstraint(
                "data_source_id",
                "record_type",
                "source_raw_id",
                name=f"uq_{table}_data_source_id_record_type_source_raw_id",
            ),
            schema="staging",
        )
        op.create_index(
            f"ix_{table}_pending", table, ["data_source_id", "processing_status"], schema="staging"
        )
        _guard(table, RAW_IMMUTABLE)
        _touch("staging", table)

    for table in SNAPSHOT_TABLES:
        op.create_table(
            table,
            *_base_columns(),
            sa.Column("data_source_id", sa.Uuid(), nullable=False),
            sa.Column("account_type", sa.String(32), nullable=False),
            sa.Column("sub_account_id", sa.String(256), nullable=True),
            sa.Column("snapshot_timestamp", sa.DateTime(timezone=True), nullable=False),
            sa.Column("balances", postgresql.JSONB(), nullable=False),
            sa.Column(
                "ingested_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            ),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            schema="staging",
        )
        op.create_index(
            f"ix_{table}_account_time",
            table,
            ["data_source_id", "account_type", "snapshot_timestamp"],
            schema="staging",
        )
        _guard(table, SNAPSHOT_IMMUTABLE)
        _touch("staging", table)


def downgrade() -> None:
    for table in (*RAW_TABLES, *SNAPSHOT_TABLES):
        op.drop_table(table, schema="staging")
        op.execute(f"DROP FUNCTION staging.{table}_immutable()")
    op.execute("DROP TYPE staging.processing_status")
    op.execute("DROP FUNCTION public.coinfrs_touch_updated_at()")
    op.execute("DROP SCHEMA canonical")
    op.execute("DROP SCHEMA staging")
