"""Schema `staging`, ingestion state: resumable cursors, history coverage, symbols ever seen."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base


class IngestionCursor(Base):
    """Where one stream (and partition: a symbol, an asset, a transfer type) resumes; written in
    the same transaction as the page it follows, so a crash never skips or repeats a page."""

    __tablename__ = "ingestion_cursors"
    __table_args__ = (
        UniqueConstraint("data_source_id", "stream", "partition"),
        {"schema": "staging"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    stream: Mapped[str] = mapped_column(String(64))
    partition: Mapped[str] = mapped_column(String(128), server_default=text("''"))
    cursor: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class StreamCoverage(Base):
    """What history of a stream was fetched, and before when the provider cannot return any."""

    __tablename__ = "stream_coverage"
    __table_args__ = (
        UniqueConstraint("data_source_id", "stream", "partition"),
        {"schema": "staging"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    stream: Mapped[str] = mapped_column(String(64))
    partition: Mapped[str] = mapped_column(String(128), server_default=text("''"))
    fetched_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fetched_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # History before this instant cannot be fetched (the provider's look-back limit).
    unavailable_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)


class KnownSymbol(Base):
    """Every trading pair a data source ever touched: delisted pairs vanish from exchangeInfo,
    and their fills must still be fetched."""

    __tablename__ = "known_symbols"
    __table_args__ = (
        UniqueConstraint("data_source_id", "market", "symbol"),
        {"schema": "staging"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    # "spot", "cross_margin", "isolated_margin", "usdm", "coinm"
    market: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    base_asset: Mapped[str | None] = mapped_column(String(32))
    quote_asset: Mapped[str | None] = mapped_column(String(32))
    delisted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
