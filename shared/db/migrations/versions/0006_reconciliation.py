"""Reconciliation: runs, results per (day, account, asset), alerts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 01:04:19.479332
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("findings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
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
            name=op.f("fk_alerts_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        schema="canonical",
    )
    op.create_index(
        "uq_alerts_source_day", "alerts", ["data_source_id", "day"], unique=True, schema="canonical"
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column(
            "counts",
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
            name=op.f("fk_reconciliation_runs_data_source_id_data_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["canonical.jobs.id"], name=op.f("fk_reconciliation_runs_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        schema="canonical",
    )
    op.create_index(
        op.f("ix_reconciliation_runs_data_source_id"),
        "reconciliation_runs",
        ["data_source_id"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "reconciliation_results",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("opening", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("movements", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("expected", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("actual", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("difference", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("tolerance", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "matched",
                "mismatch",
                "missing_data",
                name="reconciliation_status",
                schema="canonical",
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("current", sa.Boolean(), server_default=sa.text("true"), nullable=False),
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
            name=op.f("fk_reconciliation_results_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["canonical.data_sources.id"],
            name=op.f("fk_reconciliation_results_data_source_id_data_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["canonical.reconciliation_runs.id"],
            name=op.f("fk_reconciliation_results_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_results")),
        schema="canonical",
    )
    op.create_index(
        "ix_reconciliation_results_current",
        "reconciliation_results",
        ["data_source_id", "day", "current"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        op.f("ix_reconciliation_results_run_id"),
        "reconciliation_results",
        ["run_id"],
        unique=False,
        schema="canonical",
    )
    for table in ("reconciliation_runs", "reconciliation_results", "alerts"):
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON canonical.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.coinfrs_touch_updated_at()"
        )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_reconciliation_results_run_id"),
        table_name="reconciliation_results",
        schema="canonical",
    )
    op.drop_index(
        "ix_reconciliation_results_current", table_name="reconciliation_results", schema="canonical"
    )
    op.drop_table("reconciliation_results", schema="canonical")
    op.drop_index(
        op.f("ix_reconciliation_runs_data_source_id"),
        table_name="reconciliation_runs",
        schema="canonical",
    )
    op.drop_table("reconciliation_runs", schema="canonical")
    op.drop_index("uq_alerts_source_day", table_name="alerts", schema="canonical")
    op.drop_table("alerts", schema="canonical")
    op.execute("DROP TYPE canonical.reconciliation_status")
