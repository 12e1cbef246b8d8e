"""Schema `canonical`, reconciliation: runs, per (day, account, asset) results, and alerts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base
from shared.db.models.ledger import AMOUNT
from shared.sources.common.reconciliation import Status


class ReconciliationRun(Base):
    """One reconciliation of a data source over a range of days (history of runs is kept)."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = ({"schema": "canonical"},)

    data_source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("canonical.data_sources.id"), index=True
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("canonical.jobs.id"))
    start_day: Mapped[date] = mapped_column(Date)
    end_day: Mapped[date] = mapped_column(Date)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class ReconciliationResult(Base):
    """One (day, account, asset): opening + movements = expected against actual."""

    __tablename__ = "reconciliation_results"
    __table_args__ = (
        Index("ix_reconciliation_results_current", "data_source_id", "day", "current"),
        {"schema": "canonical"},
    )

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("canonical.reconciliation_runs.id"), index=True
    )
    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    day: Mapped[date] = mapped_column(Date)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.accounts.id"))
    asset: Mapped[str] = mapped_column(String(32))
    opening: Mapped[Decimal | None] = mapped_column(AMOUNT)
    movements: Mapped[Decimal] = mapped_column(AMOUNT)
    expected: Mapped[Decimal | None] = mapped_column(AMOUNT)
    actual: Mapped[Decimal | None] = mapped_column(AMOUNT)
    difference: Mapped[Decimal | None] = mapped_column(AMOUNT)
    tolerance: Mapped[Decimal | None] = mapped_column(AMOUNT)
    status: Mapped[Status] = mapped_column(
        Enum(
            Status,
            name="reconciliation_status",
            schema="canonical",
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    reason: Mapped[str | None] = mapped_column(Text)
    # Re-running a day replaces its results: the newest run's rows are current, older ones stay
    # as history.
    current: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class Alert(Base):
    """A day of a data source that did not close; raised once however often the day is re-run."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_source_day", "data_source_id", "day", unique=True),
        {"schema": "canonical"},
    )

    data_source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.data_sources.id"))
    day: Mapped[date] = mapped_column(Date)
    # What did not close: [{account, asset, status, difference, reason}]
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
