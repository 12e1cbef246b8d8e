"""Schema `canonical`, jobs: long-running work (sync, reconciliation) the API reports on."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    """One unit of background work; `progress` is what its steps report (streams, pages, rows)."""

    __tablename__ = "jobs"
    __table_args__ = ({"schema": "canonical"},)

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.users.id"), index=True)
    data_source_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("canonical.data_sources.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus,
            name="job_status",
            schema="canonical",
            values_callable=lambda kinds: [kind.value for kind in kinds],
        ),
        server_default=JobStatus.QUEUED.value,
    )
    # What was asked (e.g. {"start": "2026-11-01", "end": "2026-11-25"}).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
