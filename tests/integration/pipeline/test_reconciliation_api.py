"""Reconciliation through the API: a sync reconciles the day it closed; the trigger reconciles a
range as a job; history is filtered, paginated and the caller's own."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.pipeline.test_sync_pipeline import _sync, connected  # noqa: F401


def test_a_sync_reconciles_the_day_it_closed(connected, pipeline):  # noqa: F811
    api, data_source_id, history, _ = connected
    job_id = _sync(api, data_source_id, history)
    pipeline.bus.drain(timeout=120)
    job = api.get(f"/jobs/{job_id}").json()["data"]
    assert job["status"] == "succeeded" and "reconcile" in job["progress"], job
    results = api.get("/reconciliation/history", params={"data_source_id": data_source_id})
    rows = results.json()["data"]
    closed = (history.end - timedelta(days=1)).date().isoformat()
    assert rows and {row["date"] for row in rows} == {closed}
    # One read only: the day before has none of ours, so nothing can be proven yet.
    assert {row["status"] for row in rows} == {"missing_data"}
    assert all(isinstance(row["actual"], str) for row in rows if row["actual"] is not None)


def test_trigger_runs_a_job_and_history_filters(connected, pipeline, providers):  # noqa: F811
    api, data_source_id, history, _ = connected
    simulator = providers.binance.simulator
    # Two daily reads: the second day becomes provable.
    for day in (history.days - 1, history.days):
        simulator.now = history.start + timedelta(days=day, minutes=30)
        _sync(api, data_source_id, history)
        pipeline.bus.drain(timeout=120)
    last = (history.start + timedelta(days=history.days - 1)).date()
    started = api.post(
        "/reconciliation/trigger",
        json={"data": {"data_source_id": data_source_id, "date": last.isoformat()}},
    )
    assert started.status_code == 202, started.json()
    pipeline.bus.drain(timeout=120)
    job = api.get(f"/jobs/{started.json()['data']['job_id']}").json()["data"]
    assert job["status"] == "succeeded" and job["kind"] == "reconcile"
    matched = api.get(
        "/reconciliation/history",
        params={
            "data_source_id": data_source_id,
            "start": last.isoformat(),
            "end": last.isoformat(),
            "status": "matched",
            "limit": 3,
        },
    ).json()
    assert len(matched["data"]) == 3 and matched["meta"]["next_cursor"]
    assert {row["date"] for row in matched["data"]} == {last.isoformat()}
    mismatched = api.get(
        "/reconciliation/history", params={"data_source_id": data_source_id, "status": "mismatch"}
    ).json()["data"]
    assert mismatched == []


def test_trigger_validation_and_ownership(connected, sign_in_user, pipeline):  # noqa: F811
    api, data_source_id, _, _ = connected
    both = api.post(
        "/reconciliation/trigger",
        json={
            "data": {"data_source_id": data_source_id, "date": "2026-01-02", "start": "2026-01-01"}
        },
    )
    assert both.status_code == 422
    future = api.post(
        "/reconciliation/trigger",
        json={"data": {"data_source_id": data_source_id, "date": "2999-01-01"}},
    )
    assert future.status_code == 422
    bob = sign_in_user()
    import httpx

    with httpx.Client(base_url=str(api.base_url), headers=bob.headers) as as_bob:
        assert (
            as_bob.post(
                "/reconciliation/trigger", json={"data": {"data_source_id": data_source_id}}
            ).status_code
            == 404
        )
        assert (
            as_bob.get(
                "/reconciliation/history", params={"data_source_id": data_source_id}
            ).status_code
            == 404
        )
        assert as_bob.get("/reconciliation/history").json()["data"] == []
