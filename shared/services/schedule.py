"""The daily fan-out: one `sync` job and one ingestion Cloud Task per active data source."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select

from shared.config import Runtime
from shared.db.engine import unit_of_work
from shared.db.models import DataSource, DataSourceStatus, Job, JobStatus
from shared.messaging.messages import IngestRequested
from shared.services import jobs
from shared.services.sync import SYNC
from shared.sources.registry import source_types

log = logging.getLogger(__name__)


@dataclass
class DailySummary:
    """What one call of the fan-out did (the scheduler's response body, and the log line)."""

    run_date: date
    queued: int = 0  # data sources whose task was enqueued by this call
    already_queued: int = 0  # a job of this run_date existed and had started or finished
    skipped_invalid: int = 0  # status invalid: the pipeline skips them until revalidated
    unsupported: int = 0  # providers without an ingestion yet
    jobs: list[str] = field(default_factory=list)  # this run_date's job ids, one per source

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "run_date": self.run_date.isoformat()}


def task_name(run_date: date, data_source_id: uuid.UUID) -> str:
    """The day's task of one data source: Cloud Tasks refuses the name a second time."""
    return f"daily-{run_date.isoformat()}-{data_source_id}"


def fan_out(runtime: Runtime, run_date: date) -> DailySummary:
    """Queue `run_date`'s sync of every active data source; a repeated call adds nothing."""
    ingestible = {kind for kind, source in source_types().items() if source.ingest is not None}
    summary = DailySummary(run_date)
    with unit_of_work() as db:
        sources = db.execute(
            select(DataSource.id, DataSource.type, DataSource.status)
            .where(DataSource.deleted_at.is_(None))
            .order_by(DataSource.created_at, DataSource.id)
        ).all()
    for source_id, kind, status in sources:
        if kind not in ingestible:
            summary.unsupported += 1
            continue
        if status != DataSourceStatus.ACTIVE:
            summary.skipped_invalid += 1
            continue
        job = _daily_job(source_id, run_date)
        if job is None:  # deleted or invalidated since the listing
            summary.skipped_invalid += 1
            continue
        summary.jobs.append(str(job.id))
        if job.status != JobStatus.QUEUED:
            # Its task ran already; a name Cloud Tasks forgot must not start it again.
            summary.already_queued += 1
            continue
        message = IngestRequested(job_id=job.id, data_source_id=source_id, provider=kind)
        # Enqueued even when an earlier call created the job: that call may have died before
        # its enqueue, and the task name makes a second enqueue a no-op.
        runtime.bus.enqueue(*message.route(), message, task_name=task_name(run_date, source_id))
        summary.queued += 1
    log.info("daily run queued", extra=summary.as_json())
    return summary


def _daily_job(data_source_id: uuid.UUID, run_date: date) -> Job | None:
    """The data source's sync job of `run_date`, created on first call; None when the source is
    no longer active. Concurrent calls serialise on the data source row, so one job is created."""
    with unit_of_work() as db:
        # NO KEY UPDATE, not UPDATE: the job insert below (its own transaction, in jobs.create)
        # takes KEY SHARE on this row for its foreign key, which UPDATE would block forever.
        source = db.execute(
            select(DataSource)
            .where(DataSource.id == data_source_id)
            .with_for_update(key_share=True)
        ).scalar()
        if (
            source is None
            or source.deleted_at is not None
            or source.status != DataSourceStatus.ACTIVE
        ):
            return None
        existing = db.execute(
            select(Job)
            .where(
                Job.data_source_id == data_source_id,
                Job.kind == SYNC,
                Job.parameters["daily"].astext == run_date.isoformat(),
            )
            .order_by(Job.created_at)
            .limit(1)
        ).scalar()
        if existing is not None:
            return existing
        # Committed before this transaction releases the row lock: the next caller sees it.
        return jobs.create(source.owner_id, SYNC, data_source_id, {"daily": run_date.isoformat()})
