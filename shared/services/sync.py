"""Syncing a data source: a job, ingestion into staging, then the ETL into the canonical ledger.

`request_sync` (the API) queues the job as a Cloud Task to `<provider>_ingest`; `ingest` (that
task) writes staging and publishes `raw-ingested`; `transform` (its subscriber `<provider>_etl`)
writes the canonical ledger and publishes `canonical-updated`. Every step is idempotent: a
duplicate delivery of a finished step changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import update

from shared.config import Runtime
from shared.db.engine import get_engine, unit_of_work
from shared.db.models import DataSource, DataSourceStatus, Job
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.http.envelope import jsonable
from shared.messaging.messages import CanonicalUpdated, IngestRequested, RawIngested
from shared.services import jobs
from shared.services.ownership import owned
from shared.sources.registry import source_types

log = logging.getLogger(__name__)
SYNC = "sync"


def request_sync(
    runtime: Runtime,
    owner: uuid.UUID,
    data_source_id: uuid.UUID,
    start: date | None,
    end: date | None,
) -> Job:
    """Queue a sync of one data source: a `queued` job and a task for its provider's ingest."""
    if start and end and start > end:
        raise ValidationFailed("start is after end", {"start": str(start), "end": str(end)})
    if end and end > datetime.now(UTC).date():
        raise ValidationFailed("end is in the future", {"end": str(end)})
    with unit_of_work() as db:
        source = owned(db, DataSource, owner, data_source_id, "data source")
        if source.status != DataSourceStatus.ACTIVE:
            raise Conflict("the data source is invalid; validate its key before syncing")
        if source_types()[source.type].ingest is None:
            raise Conflict(f"syncing {source.type} data sources is not available yet")
        provider = source.type
    parameters = {"start": start and start.isoformat(), "end": end and end.isoformat()}
    job = jobs.create(owner, SYNC, data_source_id, parameters)
    message = IngestRequested(
        job_id=job.id, data_source_id=data_source_id, provider=provider, start=start, end=end
    )
    # The task name is the job: a retried enqueue can never start the same sync twice.
    runtime.bus.enqueue(*message.route(), message, task_name=f"sync-{job.id}")
    return job


def _credentials(runtime: Runtime, data_source_id: uuid.UUID) -> tuple[DataSource, Any]:
    from shared.services.datasources import credentials_of

    with unit_of_work() as db:
        source = db.get(DataSource, data_source_id)
        if source is None or source.deleted_at is not None:
            raise NotFound("the data source was deleted")
        return source, credentials_of(runtime, db, source)


def ingest(runtime: Runtime, message: IngestRequested) -> bool:
    """The ingest step; publishes `raw-ingested` when done. False when there was nothing to do."""
    job = jobs.claim(message.job_id, "ingest")
    if job is None:
        return False
    source, credentials = _credentials(runtime, message.data_source_id)
    if source.status != DataSourceStatus.ACTIVE:
        jobs.fail(message.job_id, "the data source is invalid; validate its key before syncing")
        return False
    report = source_types()[source.type].ingest(
        runtime.settings,
        get_engine(),
        source.id,
        credentials,
        start=message.start,
        end=message.end,
        progress=lambda update: jobs.record(message.job_id, ingest=update),
    )
    jobs.record(message.job_id, ingest=jsonable(report))
    runtime.bus.publish(
        RawIngested.TOPIC,
        RawIngested(job_id=message.job_id, data_source_id=source.id, provider=source.type),
    )
    return True


def transform(runtime: Runtime, message: RawIngested) -> bool:
    """The ETL step; finishes the job and publishes `canonical-updated`."""
    job = jobs.claim(message.job_id, "etl")
    if job is None:
        return False
    with unit_of_work() as db:
        source = db.get(DataSource, message.data_source_id)
    report = source_types()[source.type].etl(get_engine(), runtime.settings, source.id)
    with unit_of_work() as db:
        db.execute(
            update(DataSource)
            .where(DataSource.id == source.id)
            .values(last_synced_at=datetime.now(UTC))
        )
    jobs.succeed(message.job_id, etl=jsonable(report))
    runtime.bus.publish(
        CanonicalUpdated.TOPIC,
        CanonicalUpdated(job_id=message.job_id, data_source_id=source.id, provider=source.type),
    )
    return True
