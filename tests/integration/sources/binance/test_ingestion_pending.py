"""Deposits and withdrawals seen before they complete: never stored pending, stored final."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from infra.simulators.binance_history import History, ms
from tests.integration.sources.binance.ingestion_fixtures import cursors, expected_rows, staged
from tests.integration.sources.binance.test_ingestion_products import _ledger_mismatches


def _pending_event(history: History):
    (event,) = [e for e in history.events if e.settles_at is not None]
    return event


def test_a_deposit_pending_at_one_run_is_stored_completed_by_the_next(binance_account) -> None:
    history = History(31, days=5, pending_deposit_day=2)
    account = binance_account(history=history)
    simulator, event = account.simulator, _pending_event(history)
    raw_id = event.row["id"]

    for day in (1, 2, 3):
        simulator.now = history.start + timedelta(days=day, minutes=30)
        report = account.ingest()
    # At day 3 00:30 Binance lists it with status 0: not stored, reported, remembered.
    assert ms(simulator.now) < event.settles_at and event.time <= ms(simulator.now)
    assert [(p["stream"], p["id"], p["status"]) for p in report.pending_not_stored] == [
        ("deposit", raw_id, 0)
    ]
    assert ("deposit", raw_id) not in {(t, i) for t, i, _ in staged(account.data_source_id)}
    assert cursors(account.data_source_id)[("deposit", "")]["pending_since"] == event.time

    simulator.now = history.start + timedelta(days=4, minutes=30)
    report = account.ingest()
    assert report.pending_not_stored == []
    rows = {(t, i): payload for t, i, payload in staged(account.data_source_id)}
    assert ("deposit", raw_id) in rows
    assert "('status', 1)" in rows[("deposit", raw_id)]
    assert cursors(account.data_source_id)[("deposit", "")]["pending_since"] is None
    # (Daily runs also hold the delisted pair's fills, which expected_rows leaves out.)
    assert expected_rows(history, ms(simulator.now)) <= set(rows)


def test_every_run_walks_the_last_seven_days_again(binance_account) -> None:
    account = binance_account(seed=32, days=10)
    account.ingest()
    simulator = account.simulator
    before = len(simulator.requests)
    account.ingest()
    asked = [p for _m, p in simulator.requests[before:]]
    # One 90-day window from now - 7 days for each, although nothing new happened.
    assert asked.count("/sapi/v1/capital/deposit/hisrec") == 1
    assert asked.count("/sapi/v1/capital/withdraw/history") == 1
    cursor = cursors(account.data_source_id)[("deposit", "")]
    assert cursor["next_start"] > ms(simulator.now) and cursor["pending_since"] is None


def test_the_ledger_closes_with_a_deposit_pending_over_a_daily_read(
    binance_account, engine
) -> None:
    """A deposit pending at one daily read and completed before the next is credited when it
    completes: booked then (completeTime), every day still closes."""
    history = History(33, days=5, pending_deposit_day=2)
    event = _pending_event(history)
    assert event is not None
    assert _ledger_mismatches(binance_account(history=history), engine) == []


def test_a_withdrawal_processing_at_one_run_is_stored_completed_and_every_day_closes(
    binance_account, engine
) -> None:
    """Binance debits a withdrawal when it is applied for: stored once completed, booked at
    applyTime, the ledger closes every day although the row was not final at one read."""
    history = History(34, days=5, pending_withdrawal_day=1)
    event = _pending_event(history)
    assert event.stream == "withdrawal"
    account = binance_account(history=history)
    assert _ledger_mismatches(account, engine) == []
    rows = {(t, i): payload for t, i, payload in staged(account.data_source_id)}
    assert "('status', 6)" in rows[("withdrawal", event.row["id"])]


def test_a_row_pending_for_longer_than_the_rewalk_is_still_fetched_again(
    binance_account,
) -> None:
    history = History(35, days=12, pending_deposit_day=1)
    account = binance_account(history=history)
    simulator, event = account.simulator, _pending_event(history)
    simulator.now = history.start + timedelta(days=2, minutes=30)
    first = account.ingest()
    assert [p["id"] for p in first.pending_not_stored] == [event.row["id"]]
    # Binance keeps it pending for 10 more days (a stuck deposit), then completes it.
    stuck = dataclasses.replace(event, settles_at=ms(history.start + timedelta(days=11)))
    history.events[history.events.index(event)] = stuck
    simulator.now = history.start + timedelta(days=10, minutes=30)
    second = account.ingest()
    assert [p["id"] for p in second.pending_not_stored] == [event.row["id"]]
    simulator.now = history.start + timedelta(days=12, minutes=30)
    before = len(simulator.requests)
    account.ingest()
    # Walked again from the pending row (11 days back), not only the last 7 days.
    assert "/sapi/v1/capital/deposit/hisrec" in [p for _m, p in simulator.requests[before:]]
    rows = {(t, i): payload for t, i, payload in staged(account.data_source_id)}
    assert "('status', 1)" in rows[("deposit", event.row["id"])]
