"""The whole chain with BUS=gcp: the official Pub/Sub emulator pushing into the functions and
gcloud-tasks-emulator dispatching to them, every function served over real HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

from infra.local.emulators import (
    EmulatorUnavailable,
    create_pubsub_topology,
    create_queues,
    pubsub_emulator,
    tasks_emulator,
)
from shared.db.engine import get_engine
from shared.db.models import ReconciliationResult, ReconciliationRun, Transaction
from shared.messaging.gcp import GcpBus

pytestmark = pytest.mark.emulator

PROJECT, LOCATION = "coinfrs-chain", "europe-west1"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s")
        time.sleep(0.2)
    return value


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """Serve `app` over real HTTP (the emulators push and dispatch to it); yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def gcp_pipeline(database_url, monkeypatch, fake_ingestion_clock) -> Iterator[str]:
    """Every function at `<base>/functions/<target>/`, the shared runtime on BUS=gcp."""
    from infra.local.devserver import build_app
    from shared.config import bootstrap

    with ExitStack() as stack:
        try:
            pubsub_host = stack.enter_context(pubsub_emulator())
            tasks_host = stack.enter_context(tasks_emulator())
        except EmulatorUnavailable as missing:
            pytest.skip(f"emulator unavailable: {missing}")
        base = stack.enter_context(_serving(build_app()))
        create_pubsub_topology(pubsub_host, PROJECT, f"{base}/functions")
        create_queues(tasks_host, PROJECT, LOCATION)
        runtime = bootstrap()  # every function module shares this one
        settings = runtime.settings.model_copy(
            update={
                "bus": "gcp",
                "pubsub_emulator_host": pubsub_host,
                "cloud_tasks_emulator_host": tasks_host,
                "functions_base_url": f"{base}/functions",
                "gcp_project": PROJECT,
                "gcp_location": LOCATION,
                # The emulator ignores OIDC tokens; none are asked for.
                "tasks_service_account_email": None,
            }
        )
        monkeypatch.setattr(runtime, "settings", settings)
        monkeypatch.setattr(runtime, "_bus", GcpBus(settings))
        yield base


def test_a_sync_runs_the_whole_chain_through_the_emulators(gcp_pipeline, connect_binance):
    connected = connect_binance(gcp_pipeline)
    api, source_id = connected.api, uuid.UUID(connected.data_source_id)
    started = api.post(
        f"/datasources/{source_id}/sync",
        json={"data": {"start": connected.history.start.date().isoformat()}},
    )
    assert started.status_code == 202, started.json()
    job_id = started.json()["data"]["job_id"]

    def finished() -> dict | None:
        job = api.get(f"/jobs/{job_id}").json()["data"]
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_for(finished, 40, "the job finishing")
    assert job["status"] == "succeeded", job
    assert job["progress"]["ingest"]["records_inserted"] > 0

    def reconciled() -> int:
        with get_engine().connect() as connection:
            return connection.execute(
                select(func.count())
                .select_from(ReconciliationResult)
                .join(ReconciliationRun, ReconciliationRun.id == ReconciliationResult.run_id)
                .where(ReconciliationRun.job_id == uuid.UUID(job_id))
            ).scalar()

    # canonical-updated is pushed after the job succeeds: reconciliation lands a moment later.
    assert wait_for(reconciled, 15, "the reconciliation results") > 0
    with get_engine().connect() as connection:
        transactions = connection.execute(
            select(func.count()).where(Transaction.data_source_id == source_id)
        ).scalar()
    assert transactions > 0
    assert "reconcile" in api.get(f"/jobs/{job_id}").json()["data"]["progress"]


def test_the_daily_schedule_runs_the_chain_through_the_emulators(
    own_database, gcp_pipeline, connect_binance
):
    """What Cloud Scheduler does at 00:30 UTC: schedule_daily fans out a Cloud Task per active
    data source, and the chain runs from there to reconciliation."""
    import httpx

    connected = connect_binance(gcp_pipeline)
    run_date = connected.history.end.date()
    scheduled = httpx.post(
        f"{gcp_pipeline}/functions/schedule_daily/",
        json={"run_date": run_date.isoformat()},
        timeout=30,
    )
    assert scheduled.status_code == 200, scheduled.text
    [job_id] = scheduled.json()["jobs"]

    def finished() -> dict | None:
        # canonical-updated reaches binance_reconcile after the job succeeds: wait for both.
        job = connected.api.get(f"/jobs/{job_id}").json()["data"]
        done = job["status"] == "failed" or "reconcile" in job["progress"]
        return job if done else None

    job = wait_for(finished, 120, "the daily job finishing and reconciling")
    assert job["status"] == "succeeded", job
    assert job["progress"]["reconcile"], job["progress"]
