"""Raw-data guards fire only on UPDATEs that name a guarded column.

The ETL's status updates (processing_status, processing_error, processed_at) no longer pay for a
trigger call per row; an UPDATE that names a payload column still meets the guard, whatever it
sets the column to.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GUARDED = {
    "raw_binance_data": ("data_source_id", "record_type", "source_raw_id", "raw_payload", "ingested_at"),
    "raw_fireblocks_data": ("data_source_id", "record_type", "source_raw_id", "raw_payload", "ingested_at"),
    "raw_binance_position_snapshot": (
        "data_source_id", "account_type", "sub_account_id", "snapshot_timestamp", "balances", "ingested_at",
    ),
    "raw_fireblocks_position_snapshot": (
        "data_source_id", "account_type", "sub_account_id", "snapshot_timestamp", "balances", "ingested_at",
    ),
}  # fmt: skip


def _recreate(table: str, columns: tuple[str, ...] | None) -> None:
    op.execute(f"DROP TRIGGER {table}_immutable ON staging.{table}")
    of = f"OF {', '.join(columns)} " if columns else ""
    op.execute(
        f"CREATE TRIGGER {table}_immutable BEFORE UPDATE {of}ON staging.{table} "
        f"FOR EACH ROW EXECUTE FUNCTION staging.{table}_immutable()"
    )


def upgrade() -> None:
    for table, columns in GUARDED.items():
        _recreate(table, columns)


def downgrade() -> None:
    for table in GUARDED:
        _recreate(table, None)
