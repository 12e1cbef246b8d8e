"""Schema `canonical`, ownership: a user's portfolios and the legal entities inside them."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base


class Portfolio(Base):
    """A group of entities one user owns (a fund family, a company group)."""

    __tablename__ = "portfolios"
    __table_args__ = (
        Index(
            "uq_portfolios_owner_name_live",
            "owner_id",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_portfolios_owner_page", "owner_id", "created_at", "id"),
        {"schema": "canonical"},
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.users.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class Entity(Base):
    """A legal entity whose books Coinfrs keeps; it belongs to one portfolio."""

    __tablename__ = "entities"
    __table_args__ = (
        Index(
            "uq_entities_portfolio_name_live",
            "portfolio_id",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_entities_owner_page", "owner_id", "created_at", "id"),
        {"schema": "canonical"},
    )

    # The owner is denormalised from the portfolio so every read is scoped by one indexed column.
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.users.id"))
    portfolio_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("canonical.portfolios.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str | None] = mapped_column(String(300))
    jurisdiction: Mapped[str | None] = mapped_column(String(8))
    functional_currency: Mapped[str] = mapped_column(String(3), server_default="USD")
