"""Data sources and their sealed credentials; staging rows now reference their data source.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:18:55.562533
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


STAGING = (
    "raw_binance_data",
    "raw_binance_position_snapshot",
    "raw_fireblocks_data",
    "raw_fireblocks_position_snapshot",
)


def upgrade() -> None:
    op.create_table(
        "data_sources",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "invalid", name="data_source_status", schema="canonical"),
            nullable=False,
        ),
        sa.Column(
            "permissions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("last_validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
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
            ["entity_id"],
            ["canonical.entities.id"],
            name=op.f("fk_data_sources_entity_id_entities"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["canonical.users.id"], name=op.f("fk_data_sources_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_sources")),
        schema="canonical",
    )
    op.create_index(
        op.f("ix_data_sources_entity_id"),
        "data_sources",
        ["entity_id"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        "ix_data_sources_owner_page",
        "data_sources",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "data_source_credentials",
        sa.Column("data_source_id", sa.Uuid(), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("kek_id", sa.String(length=512), nullable=False),
        sa.Column("kek_version", sa.String(length=512), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
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
            name=op.f("fk_data_source_credentials_data_source_id_data_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_source_credentials")),
        sa.UniqueConstraint(
            "data_source_id", name=op.f("uq_data_source_credentials_data_source_id")
        ),
        schema="canonical",
    )
    for table in ("data_sources", "data_source_credentials"):
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON canonical.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.coinfrs_touch_updated_at()"
        )
    for table in STAGING:
        op.create_foreign_key(
            f"fk_{table}_data_source_id_data_sources",
            table,
            "data_sources",
            ["data_source_id"],
            ["id"],
            source_schema="staging",
            referent_schema="canonical",
        )


def downgrade() -> None:
    for table in STAGING:
        op.drop_constraint(
            f"fk_{table}_data_source_id_data_sources", table, schema="staging", type_="foreignkey"
        )
    op.drop_table("data_source_credentials", schema="canonical")
    op.drop_index("ix_data_sources_owner_page", table_name="data_sources", schema="canonical")
    op.drop_index(op.f("ix_data_sources_entity_id"), table_name="data_sources", schema="canonical")
    op.drop_table("data_sources", schema="canonical")
    op.execute("DROP TYPE canonical.data_source_status")
