"""The daily run: `schedule_daily` queues one sync job and task per active data source, once per
day however often the scheduler calls; its tasks then run ingest, ETL and reconciliation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import func, select, update

from shared.db.engine import get_engine, unit_of_work
from shared.db.models import (
    DataSource,
    DataSourceStatus,
    Job,
    PositionSnapshot,
    ReconciliationResult,
    ReconciliationRun,
    Transaction,
)
from shared.messaging.local import LocalBus

RUN_DATE = date(2020, 1, 1)  # never today: `{}` must be a day of its own


class Recorder:
    """A transport that answers every delivery 200 and keeps it: tasks are counted, not run."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, dict, Mapping[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.tasks.append((url, json.loads(body), dict(headers)))
        return 200


@pytest.fixture
def recorded(own_database, monkeypatch) -> Iterator[tuple[LocalBus, Recorder]]:
    from shared.config import bootstrap

    runtime = bootstrap()
    recorder = Recorder()
    bus = LocalBus(runtime.settings, transport=recorder, backoff_seconds=0.01)
    monkeypatch.setattr(runtime, "_bus", bus)
    yield bus, recorder
    bus.close()


def _set(data_source_id: uuid.UUID, **values) -> None:
    with unit_of_work() as db:
        db.execute(update(DataSource).where(DataSource.id == data_source_id).values(**values))


def _daily_jobs(run_date: date) -> list[Job]:
    with unit_of_work() as db:
        return list(
            db.execute(
                select(Job).where(
                    Job.kind == "sync", Job.parameters["daily"].astext == run_date.isoformat()
                )
            ).scalars()
        )


def test_one_job_and_task_per_active_source_however_often_it_is_called(recorded, make_data_source):
    from tests.conftest import function_client

    bus, recorder = recorded
    active = {make_data_source("binance"), make_data_source("binance")}
    invalid = make_data_source("binance")
    _set(invalid, status=DataSourceStatus.INVALID)
    _set(make_data_source("binance"), deleted_at=datetime.now(UTC))
    make_data_source("fireblocks")  # no ingestion yet
    client = function_client("schedule_daily")

    first = client.post("/", json={"run_date": RUN_DATE.isoformat()})
    assert first.status_code == 200, first.get_data(as_text=True)
    bus.drain(timeout=10)
    assert first.get_json() | {"jobs": None} == {
        "run_date": RUN_DATE.isoformat(),
        "queued": 2,
        "already_queued": 0,
        "skipped_invalid": 1,
        "unsupported": 1,
        "jobs": None,
    }
    jobs = _daily_jobs(RUN_DATE)
    assert {job.data_source_id for job in jobs} == active
    assert sorted(first.get_json()["jobs"]) == sorted(str(job.id) for job in jobs)
    assert all(job.parameters == {"daily": RUN_DATE.isoformat()} for job in jobs)
    assert len(recorder.tasks) == 2
    by_source = {
        uuid.UUID(body["data_source_id"]): (url, body, h) for url, body, h in recorder.tasks
    }
    assert set(by_source) == active
    for source_id, (url, body, headers) in by_source.items():
        assert url.endswith("/binance_ingest/")
        assert headers["X-CloudTasks-TaskName"] == f"daily-{RUN_DATE}-{source_id}"
        assert headers["X-CloudTasks-QueueName"] == "ingestion-binance"
        assert body["provider"] == "binance" and body["start"] is None and body["end"] is None

    # The scheduler retries (or fires twice): same jobs, and the task names stop second tasks.
    again = client.post("/", json={})
    assert again.status_code == 200
    assert client.post("/", json={"run_date": RUN_DATE.isoformat()}).status_code == 200
    bus.drain(timeout=10)
    assert {job.id for job in _daily_jobs(RUN_DATE)} == {job.id for job in jobs}
    assert len(recorder.tasks) == 2 + 2  # `{}` is today's run: a day of its own
    assert again.get_json()["run_date"] == datetime.now(UTC).date().isoformat()


def test_a_job_already_running_is_not_queued_again(recorded, make_data_source):
    from shared.config import bootstrap
    from shared.db.models import JobStatus
    from shared.services import schedule

    bus, recorder = recorded
    source = make_data_source("binance")
    [job_id] = schedule.fan_out(bootstrap(), RUN_DATE).jobs
    with unit_of_work() as db:
        db.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.RUNNING))
    summary = schedule.fan_out(bootstrap(), RUN_DATE)
    bus.drain(timeout=10)
    assert (summary.queued, summary.already_queued, summary.jobs) == (0, 1, [job_id])
    assert [body["data_source_id"] for _, body, _ in recorder.tasks] == [str(source)]


@pytest.mark.parametrize(
    "body",
    [b"[]", b"not json", b'{"run_date": "yesterday"}', b'{"run_date": "2026-11-26", "x": 1}'],
)
def test_a_malformed_body_is_refused(recorded, body):
    from tests.conftest import function_client

    response = function_client("schedule_daily").post(
        "/", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert recorded[1].tasks == []


def test_the_daily_chain_runs_ingest_etl_and_reconciliation(
    own_database, pipeline, connect_binance
):
    connected = connect_binance(pipeline.base)
    source_id = uuid.UUID(connected.data_source_id)
    run_date = connected.history.end.date()

    scheduled = httpx.post(
        f"{pipeline.base}/functions/schedule_daily/", json={"run_date": run_date.isoformat()}
    )
    assert scheduled.status_code == 200, scheduled.text
    [job_id] = scheduled.json()["jobs"]
    pipeline.bus.drain(timeout=120)

    job = connected.api.get(f"/jobs/{job_id}").json()["data"]
    assert job["status"] == "succeeded", job
    assert job["kind"] == "sync"
    assert job["progress"]["ingest"]["records_inserted"] > 0
    assert job["progress"]["etl"]["failed"] == 0
    assert "reconcile" in job["progress"], job["progress"]
    with get_engine().connect() as connection:
        transactions = connection.execute(
            select(func.count()).where(Transaction.data_source_id == source_id)
        ).scalar()
        closed = connection.execute(
            select(func.max(PositionSnapshot.closes_day)).where(
                PositionSnapshot.data_source_id == source_id, PositionSnapshot.source == "own"
            )
        ).scalar()
        # The daily job's own run, current for the day it closed.
        results = connection.execute(
            select(func.count())
            .select_from(ReconciliationResult)
            .join(ReconciliationRun, ReconciliationRun.id == ReconciliationResult.run_id)
            .where(
                ReconciliationRun.job_id == uuid.UUID(job_id),
                ReconciliationResult.day == closed,
                ReconciliationResult.current.is_(True),
            )
        ).scalar()
    assert transactions > 0
    assert closed is not None and results > 0
    assert pipeline.bus.dead_letters == [] and pipeline.bus.dropped_tasks == []

    # A second scheduler call the same day changes nothing.
    again = httpx.post(
        f"{pipeline.base}/functions/schedule_daily/", json={"run_date": run_date.isoformat()}
    )
    pipeline.bus.drain(timeout=60)
    assert again.json()["jobs"] == [job_id] and again.json()["queued"] == 0
    assert connected.api.get(f"/jobs/{job_id}").json()["data"] == job
