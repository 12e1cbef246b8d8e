"""Schema `canonical`, the ledger: accounts, transactions, their movements, position snapshots."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base

# Wide enough for any token amount with 18 decimals (wei) and 20 integer digits.
AMOUNT = Numeric(38, 18)


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    return Enum(
        kind,
        name=name,
        schema="canonical",
        values_callable=lambda kinds: [item.value for item in kinds],
    )


class TransactionType(enum.StrEnum):
    """CONTRACT.md transaction types."""

    TRADE = "trade"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    FEE = "fee"
    CONVERSION = "conversion"
    DUST_CONVERSION = "dust_conversion"
    REWARD = "reward"
    DISTRIBUTION = "distribution"
    INTEREST = "interest"
    FUNDING_FEE = "funding_fee"
    REALIZED_PNL = "realized_pnl"
    BORROW = "borrow"
    REPAY = "repay"
    FIAT_DEPOSIT = "fiat_deposit"
    FIAT_WITHDRAWAL = "fiat_withdrawal"
    OTHER = "other"


class MovementKind(enum.StrEnum):
    PRINCIPAL = "principal"
    FEE = "fee"


class Account(Base):
    """One balance-holding account of a data source (CONTRACT.md `account`)."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index(
            "uq_accounts_identity",
            "data_source_id",
            "type",
            text("coalesce(sub_account, '')"),
            text("coalesce(key, '')"),
            unique=True,
        ),
        {"schema": "canonical"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    type: Mapped[str] = mapped_column(String(32))
    sub_account: Mapped[str | None] = mapped_column(String(320))
    key: Mapped[str | None] = mapped_column(String(128))


class Transaction(Base):
    """One economic event; its movements say which balances it changed."""

    __tablename__ = "transactions"
    __table_args__ = (
        # Idempotent ETL: a raw record yields the same transaction(s), never a second copy.
        UniqueConstraint("raw_record_id", "sequence"),
        Index("ix_transactions_source_time", "data_source_id", "occurred_at", "id"),
        {"schema": "canonical"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    type: Mapped[TransactionType] = mapped_column(_enum(TransactionType, "transaction_type"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    external_id: Mapped[str | None] = mapped_column(String(256))
    # The staging row it came from: its provider id, its record type, and its row id.
    record_type: Mapped[str] = mapped_column(String(64))
    source_raw_id: Mapped[str] = mapped_column(String(256))
    raw_record_id: Mapped[uuid.UUID]
    sequence: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))


class Movement(Base):
    """One signed amount of one asset in one account: a trade is two or three of these."""

    __tablename__ = "movements"
    __table_args__ = (
        Index("ix_movements_account_asset_time", "account_id", "asset", "occurred_at"),
        {"schema": "canonical"},
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("canonical.transactions.id"), index=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.accounts.id"))
    asset: Mapped[str] = mapped_column(String(32))
    provider_asset: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(AMOUNT)
    kind: Mapped[MovementKind] = mapped_column(_enum(MovementKind, "movement_kind"))
    # Copied from the transaction so per-day sums need no join.
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PositionSnapshot(Base):
    """What one account held of one asset at `as_of` (normalised from a staging snapshot)."""

    __tablename__ = "position_snapshots"
    __table_args__ = (
        UniqueConstraint("raw_snapshot_id", "account_id", "asset"),
        Index("ix_position_snapshots_day", "account_id", "closes_day", "as_of"),
        {"schema": "canonical"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.accounts.id"))
    asset: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[Decimal] = mapped_column(AMOUNT)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The UTC day this snapshot closes: the day containing as_of - SNAPSHOT_GRACE.
    closes_day: Mapped[date] = mapped_column(Date)
    # "own" (our balance reads) or "account_snapshot" (Binance's end-of-day snapshot).
    source: Mapped[str] = mapped_column(String(32))
    raw_snapshot_id: Mapped[uuid.UUID]
