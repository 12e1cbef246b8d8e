"""Identity and ownership: users, Google identities, OTP codes, OAuth states, refresh tokens,
portfolios and entities.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:15:12.430883
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


TABLES = (
    "users",
    "user_identities",
    "otp_codes",
    "oauth_states",
    "refresh_tokens",
    "portfolios",
    "entities",
)


def upgrade() -> None:
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_states_state_hash")),
        schema="canonical",
    )
    op.create_table(
        "otp_codes",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("requested_ip", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_codes")),
        schema="canonical",
    )
    op.create_index(
        "ix_otp_codes_email_created",
        "otp_codes",
        ["email", "created_at"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        "ix_otp_codes_ip_created",
        "otp_codes",
        ["requested_ip", "created_at"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "users",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        schema="canonical",
    )
    op.create_index(
        "uq_users_email_live",
        "users",
        ["email"],
        unique=True,
        schema="canonical",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "portfolios",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
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
            ["owner_id"], ["canonical.users.id"], name=op.f("fk_portfolios_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolios")),
        schema="canonical",
    )
    op.create_index(
        "ix_portfolios_owner_page",
        "portfolios",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        "uq_portfolios_owner_name_live",
        "portfolios",
        ["owner_id", "name"],
        unique=True,
        schema="canonical",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
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
            ["user_id"], ["canonical.users.id"], name=op.f("fk_refresh_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        schema="canonical",
    )
    op.create_index(
        op.f("ix_refresh_tokens_family_id"),
        "refresh_tokens",
        ["family_id"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        op.f("ix_refresh_tokens_user_id"),
        "refresh_tokens",
        ["user_id"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "user_identities",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
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
            ["user_id"], ["canonical.users.id"], name=op.f("fk_user_identities_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_identities")),
        sa.UniqueConstraint(
            "provider", "subject", name=op.f("uq_user_identities_provider_subject")
        ),
        schema="canonical",
    )
    op.create_index(
        op.f("ix_user_identities_user_id"),
        "user_identities",
        ["user_id"],
        unique=False,
        schema="canonical",
    )
    op.create_table(
        "entities",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("portfolio_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("legal_name", sa.String(length=300), nullable=True),
        sa.Column("jurisdiction", sa.String(length=8), nullable=True),
        sa.Column("functional_currency", sa.String(length=3), server_default="USD", nullable=False),
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
            ["owner_id"], ["canonical.users.id"], name=op.f("fk_entities_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["canonical.portfolios.id"],
            name=op.f("fk_entities_portfolio_id_portfolios"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        schema="canonical",
    )
    op.create_index(
        "ix_entities_owner_page",
        "entities",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        op.f("ix_entities_portfolio_id"),
        "entities",
        ["portfolio_id"],
        unique=False,
        schema="canonical",
    )
    op.create_index(
        "uq_entities_portfolio_name_live",
        "entities",
        ["portfolio_id", "name"],
        unique=True,
        schema="canonical",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON canonical.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.coinfrs_touch_updated_at()"
        )


def downgrade() -> None:
    op.drop_index(
        "uq_entities_portfolio_name_live",
        table_name="entities",
        schema="canonical",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(op.f("ix_entities_portfolio_id"), table_name="entities", schema="canonical")
    op.drop_index("ix_entities_owner_page", table_name="entities", schema="canonical")
    op.drop_table("entities", schema="canonical")
    op.drop_index(
        op.f("ix_user_identities_user_id"), table_name="user_identities", schema="canonical"
    )
    op.drop_table("user_identities", schema="canonical")
    op.drop_index(
        op.f("ix_refresh_tokens_user_id"), table_name="refresh_tokens", schema="canonical"
    )
    op.drop_index(
        op.f("ix_refresh_tokens_family_id"), table_name="refresh_tokens", schema="canonical"
    )
    op.drop_table("refresh_tokens", schema="canonical")
    op.drop_index(
        "uq_portfolios_owner_name_live",
        table_name="portfolios",
        schema="canonical",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index("ix_portfolios_owner_page", table_name="portfolios", schema="canonical")
    op.drop_table("portfolios", schema="canonical")
    op.drop_index(
        "uq_users_email_live",
        table_name="users",
        schema="canonical",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("users", schema="canonical")
    op.drop_index("ix_otp_codes_ip_created", table_name="otp_codes", schema="canonical")
    op.drop_index("ix_otp_codes_email_created", table_name="otp_codes", schema="canonical")
    op.drop_table("otp_codes", schema="canonical")
    op.drop_table("oauth_states", schema="canonical")
