"""The ledger (accounts, transactions, movements, position snapshots), jobs, and ingestion state
(cursors, coverage, known symbols).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 00:42:30.818308
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


TOUCHED = (
    ("canonical", "accounts"),
    ("canonical", "jobs"),
    ("canonical", "transactions"),
    ("canonical", "movements"),
    ("canonical", "position_snapshots"),
    ("staging", "ingestion_cursors"),
    ("staging", "stream_coverage"),
    ("staging", "known_symbols"),
)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("sub_account", sa.String(length=320), nullable=True),
        sa.Column("key", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_accounts_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        schema="canonical",
    )
    op.create_index(
        "uq_accounts_identity",
        "accounts",
        [
            "data_source_id",
            "type",
            sa.literal_column("coalesce(sub_account, '')"),
            sa.literal_column("coalesce(key, '')"),
        ],
        unique=True,
        schema="canonical",
    )
    op.create_table(
        "jobs",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("data_source_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued", "running", "succeeded", "failed", name="job_status", schema="canonical"
            ),
            server_default="queued",
            nullable=False,
        ),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "progress",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_jobs_data_source_id_data_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["canonical.users.id"], name=op.f("fk_jobs_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        schema="canonical",
    )
    op.create_index(
        op.f("ix_jobs_data_source_id"), "jobs", ["data_source_id"], unique=False, schema="canonical"
    )
    op.create_index(
        op.f("ix_jobs_owner_id"), "jobs", ["owner_id"], unique=False, schema="canonical"
    )
    op.create_table(
        "transactions",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "trade",
                "deposit",
                "withdrawal",
                "transfer",
                "fee",
                "conversion",
                "dust_conversion",
                "reward",
                "distribution",
                "interest",
                "funding_fee",
                "realized_pnl",
                "borrow",
                "repay",
                "fiat_deposit",
                "fiat_withdrawal",
                "other",
                name="transaction_type",
                schema="canonical",
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("record_type", sa.String(length=64), nullable=False),
        sa.Column("source_raw_id", sa.String(length=256), nullable=False),
        sa.Column("raw_record_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_transactions_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "raw_record_id", "sequence", name=op.f("uq_transactions_raw_record_id_sequence")
        ),
        schema="canonical",
    )
    op.create_index(
        "ix_transactions_source_time",
        "transactions",
        ["data_source_id", "occurred_at", "id"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "ingestion_cursors",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=128), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "cursor",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_ingestion_cursors_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_cursors")),
        sa.UniqueConstraint(
            "data_source_id",
            "stream",
            "partition",
            name=op.f("uq_ingestion_cursors_data_source_id_stream_partition"),
        ),
        schema="staging",
    )
    op.create_table(
        "known_symbols",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("base_asset", sa.String(length=32), nullable=True),
        sa.Column("quote_asset", sa.String(length=32), nullable=True),
        sa.Column("delisted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_known_symbols_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_symbols")),
        sa.UniqueConstraint(
            "data_source_id",
            "market",
            "symbol",
            name=op.f("uq_known_symbols_data_source_id_market_symbol"),
        ),
        schema="staging",
    )
    op.create_table(
        "stream_coverage",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.String(length=128), server_default=sa.text("''"), nullable=False),
        sa.Column("fetched_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unavailable_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_stream_coverage_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_coverage")),
        sa.UniqueConstraint(
            "data_source_id",
            "stream",
            "partition",
            name=op.f("uq_stream_coverage_data_source_id_stream_partition"),
        ),
        schema="staging",
    )
    op.create_table(
        "movements",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("provider_asset", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("principal", "fee", name="movement_kind", schema="canonical"),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["canonical.accounts.id"], name=op.f("fk_movements_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["canonical.transactions.id"],
            name=op.f("fk_movements_transaction_id_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_movements")),
        schema="canonical",
    )
    op.create_index(
        "ix_movements_account_asset_time",
        "movements",
        ["account_id", "asset", "occurred_at"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        op.f("ix_movements_transaction_id"),
        "movements",
        ["transaction_id"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "position_snapshots",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("raw_snapshot_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["canonical.accounts.id"],
            name=op.f("fk_position_snapshots_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_position_snapshots_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_snapshots")),
        sa.UniqueConstraint(
            "raw_snapshot_id",
            "account_id",
            "asset",
            name=op.f("uq_position_snapshots_raw_snapshot_id_account_id_asset"),
        ),
        schema="canonical",
    )
    op.create_index(
        "ix_position_snapshots_day",
        "position_snapshots",
        ["account_id", "closes_day", "as_of"],
        unique=False,
        schema="canonical",
    )
    for schema, table in TOUCHED:
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON {schema}.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.coinfrs_touch_updated_at()"
        )


def downgrade() -> None:
    op.drop_index("ix_position_snapshots_day", table_name="position_snapshots", schema="canonical")
    op.drop_table("position_snapshots", schema="canonical")
    op.drop_index(op.f("ix_movements_transaction_id"), table_name="movements", schema="canonical")
    op.drop_index("ix_movements_account_asset_time", table_name="movements", schema="canonical")
    op.drop_table("movements", schema="canonical")
    op.drop_table("stream_coverage", schema="staging")
    op.drop_table("known_symbols", schema="staging")
    op.drop_table("ingestion_cursors", schema="staging")
    op.drop_index("ix_transactions_source_time", table_name="transactions", schema="canonical")
    op.drop_table("transactions", schema="canonical")
    op.drop_index(op.f("ix_jobs_owner_id"), table_name="jobs", schema="canonical")
    op.drop_index(op.f("ix_jobs_data_source_id"), table_name="jobs", schema="canonical")
    op.drop_table("jobs", schema="canonical")
    op.drop_index("uq_accounts_identity", table_name="accounts", schema="canonical")
    op.drop_table("accounts", schema="canonical")
    for kind in ("transaction_type", "movement_kind", "job_status"):
        op.execute(f"DROP TYPE canonical.{kind}")
