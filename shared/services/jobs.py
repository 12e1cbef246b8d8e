"""Jobs: background work the API reports on; every step claims, records and finishes its job."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from shared.db.engine import unit_of_work
from shared.db.models import Job, JobStatus
from shared.errors import DomainError, NotFound
from shared.services.ownership import owned

log = logging.getLogger(__name__)


def get(owner: uuid.UUID, job_id: uuid.UUID) -> Job:
    with unit_of_work() as db:
        return owned(db, Job, owner, job_id, "job")


def claim(job_id: uuid.UUID, stage: str) -> Job | None:
    """Mark the job running at `stage`; None when it already finished (a duplicate delivery)."""
    with unit_of_work() as db:
        job = db.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar()
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return None
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or datetime.now(UTC)
        job.progress = {**job.progress, "stage": stage}
        return job


def record(job_id: uuid.UUID, **progress: Any) -> None:
    with unit_of_work() as db:
        job = db.get(Job, job_id)
        job.progress = {**job.progress, **progress}


def fail(job_id: uuid.UUID, error: str) -> None:
    """The job failed for good (its last delivery attempt): the API shows why."""
    with unit_of_work() as db:
        db.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.not_in([JobStatus.SUCCEEDED]))
            .values(status=JobStatus.FAILED, error=error[:2000], finished_at=datetime.now(UTC))
        )
    log.error("job failed", extra={"job_id": str(job_id), "error": error[:500]})


def create(owner: uuid.UUID, kind: str, data_source_id: uuid.UUID, parameters: dict) -> Job:
    with unit_of_work() as db:
        job = Job(owner_id=owner, data_source_id=data_source_id, kind=kind,
                  parameters=parameters, status=JobStatus.QUEUED, created_by=owner,
                  updated_by=owner)  # fmt: skip
        db.add(job)
        db.flush()
        db.refresh(job)
        return job


def succeed(job_id: uuid.UUID, **progress: Any) -> None:
    with unit_of_work() as db:
        job = db.get(Job, job_id)
        job.progress = {**job.progress, **progress, "stage": "done"}
        job.status, job.finished_at = JobStatus.SUCCEEDED, datetime.now(UTC)


def step_failed(job_id: uuid.UUID, error: BaseException, last_attempt: bool) -> None:
    """A step raised: the delivery will be retried, unless this was its last attempt."""
    reason = error.message if isinstance(error, DomainError) else type(error).__name__
    if last_attempt:
        fail(job_id, reason)
    else:
        record(job_id, last_error=reason)
