"""Schema `staging`: immutable, exact copies of what each provider returned."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base


class ProcessingStatus(enum.StrEnum):
    """Where a raw record stands in the ETL; the only part of a raw row that may change."""

    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    SKIPPED = "skipped"


_status = Enum(
    ProcessingStatus,
    name="processing_status",
    schema="staging",
    values_callable=lambda kinds: [kind.value for kind in kinds],
)


class _RawData:
    """One provider record: which stream it came from, its stable id, the payload as received."""

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    record_type: Mapped[str] = mapped_column(String(64))
    source_raw_id: Mapped[str] = mapped_column(String(256))
    raw_payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ingested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    processing_status: Mapped[ProcessingStatus] = mapped_column(
        _status, server_default=ProcessingStatus.PENDING.value
    )
    processing_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class _PositionSnapshot:
    """The balances of one account as the provider reported them at `snapshot_timestamp`."""

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    account_type: Mapped[str] = mapped_column(String(32))
    # Binance sub-account email, or the Fireblocks vault account id; null for the master account.
    sub_account_id: Mapped[str | None] = mapped_column(String(256))
    snapshot_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    balances: Mapped[Any] = mapped_column(JSONB)
    ingested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


def _raw_table_args(name: str) -> tuple[Any, ...]:
    return (
        UniqueConstraint("data_source_id", "record_type", "source_raw_id"),
        Index(f"ix_{name}_pending", "data_source_id", "processing_status"),
        {"schema": "staging"},
    )


def _snapshot_table_args(name: str) -> tuple[Any, ...]:
    return (
        Index(f"ix_{name}_account_time", "data_source_id", "account_type", "snapshot_timestamp"),
        {"schema": "staging"},
    )


class RawBinanceData(_RawData, Base):
    __tablename__ = "raw_binance_data"
    __table_args__ = _raw_table_args(__tablename__)


class RawBinancePositionSnapshot(_PositionSnapshot, Base):
    __tablename__ = "raw_binance_position_snapshot"
    __table_args__ = _snapshot_table_args(__tablename__)


class RawFireblocksData(_RawData, Base):
    __tablename__ = "raw_fireblocks_data"
    __table_args__ = _raw_table_args(__tablename__)


class RawFireblocksPositionSnapshot(_PositionSnapshot, Base):
    __tablename__ = "raw_fireblocks_position_snapshot"
    __table_args__ = _snapshot_table_args(__tablename__)


RAW_DATA_TABLES = (RawBinanceData.__table__, RawFireblocksData.__table__)
SNAPSHOT_TABLES = (RawBinancePositionSnapshot.__table__, RawFireblocksPositionSnapshot.__table__)
