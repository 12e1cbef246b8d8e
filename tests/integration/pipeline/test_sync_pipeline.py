"""A sync through the real chain: the API queues a task, `binance_ingest` fills staging and
publishes `raw-ingested`, `binance_etl` writes the ledger; duplicates change nothing; a step that
keeps failing ends in a `failed` job the API shows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared.db.models import Alert, Movement, RawBinanceData, ReconciliationResult, Transaction
from shared.messaging.messages import CanonicalUpdated, IngestRequested, RawIngested


@pytest.fixture
def connected(connect_binance, pipeline):
    """A signed-in owner's Binance data source reading a 6-day simulated history:
    (api client, data source id, history, api key)."""
    source = connect_binance(pipeline.base)
    return source.api, source.data_source_id, source.history, source.api_key


def _sync(api, data_source_id, history):
    started = api.post(
        f"/datasources/{data_source_id}/sync",
        json={"data": {"start": history.start.date().isoformat()}},
    )
    assert started.status_code == 202, started.json()
    return started.json()["data"]["job_id"]


def _counts(engine, data_source_id):
    """(raw rows, transactions, movements) of one data source."""
    movements = (
        select(func.count())
        .select_from(Movement)
        .join(Transaction, Transaction.id == Movement.transaction_id)
        .where(Transaction.data_source_id == data_source_id)
    )
    with engine.connect() as connection:
        counts = [
            connection.execute(
                select(func.count())
                .select_from(model)
                .where(model.data_source_id == data_source_id)
            ).scalar()
            for model in (RawBinanceData, Transaction)
        ]
        return (*counts, connection.execute(movements).scalar())


def test_a_sync_runs_ingest_then_etl(connected, pipeline, engine):
    api, data_source_id, history, _ = connected
    job_id = _sync(api, data_source_id, history)
    pipeline.bus.drain(timeout=120)
    job = api.get(f"/jobs/{job_id}").json()["data"]
    assert job["status"] == "succeeded", job
    assert job["progress"]["stage"] == "done"
    assert job["progress"]["ingest"]["records_inserted"] > 0
    assert job["progress"]["etl"]["failed"] == 0
    raw, transactions, movements = _counts(engine, data_source_id)
    assert raw > 0 and transactions > 0 and movements >= transactions
    listed = api.get("/transactions/", params={"data_source_id": data_source_id, "limit": 5})
    assert len(listed.json()["data"]) == 5 and listed.json()["meta"]["next_cursor"]
    first = listed.json()["data"][0]
    assert all(isinstance(leg["amount"], str) for leg in first["movements"])
    positions = api.get("/positions/", params={"data_source_id": data_source_id}).json()["data"]
    assert {p["account"]["type"] for p in positions} >= {"spot", "funding"}
    source = api.get(f"/datasources/{data_source_id}").json()["data"]
    assert source["last_synced_at"] is not None


def test_every_message_delivered_twice_changes_nothing(connected, pipeline, engine):
    api, data_source_id, history, _ = connected
    job_id = _sync(api, data_source_id, history)
    pipeline.bus.drain(timeout=120)
    before = _counts(engine, data_source_id)
    job = api.get(f"/jobs/{job_id}").json()["data"]
    import uuid

    ids = {
        "job_id": uuid.UUID(job_id),
        "data_source_id": uuid.UUID(data_source_id),
        "provider": "binance",
    }
    reconciled = _reconciliation_state(engine, data_source_id)
    assert reconciled[0], "the sync reconciled the day it closed"
    again = IngestRequested(**ids)
    pipeline.bus.enqueue(*again.route(), again, task_name=f"again-{job_id}")
    pipeline.bus.publish(RawIngested.TOPIC, RawIngested(**ids))
    pipeline.bus.publish(CanonicalUpdated.TOPIC, CanonicalUpdated(**ids))
    pipeline.bus.drain(timeout=120)
    assert _counts(engine, data_source_id) == before
    assert _reconciliation_state(engine, data_source_id) == reconciled
    assert api.get(f"/jobs/{job_id}").json()["data"] == job
    assert pipeline.bus.dead_letters == [] and pipeline.bus.dropped_tasks == []


def _reconciliation_state(engine, data_source_id):
    """(current results as comparable tuples, number of alerts) of one data source."""
    with engine.connect() as connection:
        results = connection.execute(
            select(
                ReconciliationResult.day,
                ReconciliationResult.account_id,
                ReconciliationResult.asset,
                ReconciliationResult.status,
                ReconciliationResult.difference,
            ).where(
                ReconciliationResult.data_source_id == data_source_id,
                ReconciliationResult.current.is_(True),
            )
        ).all()
        alerts = connection.execute(
            select(func.count()).select_from(Alert).where(Alert.data_source_id == data_source_id)
        ).scalar()
    return sorted(map(tuple, results), key=repr), alerts


def test_an_etl_failing_every_delivery_is_dead_lettered_and_fails_the_job(
    connected, pipeline, monkeypatch
):
    import dataclasses

    from shared.sources import registry

    def broken(*_args, **_kwargs):
        raise RuntimeError("the ledger is unreachable")

    binance = registry.source_types()["binance"]
    monkeypatch.setitem(registry._REGISTRY, "binance", dataclasses.replace(binance, etl=broken))
    api, data_source_id, history, _ = connected
    job_id = _sync(api, data_source_id, history)
    pipeline.bus.drain(timeout=120)
    job = api.get(f"/jobs/{job_id}").json()["data"]
    assert job["status"] == "failed" and job["error"] == "RuntimeError"
    [dead] = pipeline.bus.dead_letters
    assert (dead.destination, dead.target, dead.attempts) == (
        "raw-ingested-dead-letter",
        "binance_etl",
        4,
    )


def test_a_step_failing_every_attempt_fails_the_job(connected, pipeline, providers):
    api, data_source_id, history, api_key = connected
    providers.binance.simulator.set_profile(api_key, "rejected")
    try:
        job_id = _sync(api, data_source_id, history)
        pipeline.bus.drain(timeout=120)
    finally:
        providers.binance.simulator.set_profile(api_key, "read_only")
    job = api.get(f"/jobs/{job_id}").json()["data"]
    assert job["status"] == "failed"
    assert "rejected" in job["error"].lower()
    [dropped] = pipeline.bus.dropped_tasks
    assert dropped.attempts == 4 and dropped.target == "binance_ingest"
