"""Reconciliation over the simulator's history: every provable day matches; a balance change
no endpoint reports is exactly one mismatch, alerted once and mailed; gaps are missing_data."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from infra.simulators.binance_history import Event
from shared.config import bootstrap
from shared.db.engine import unit_of_work
from shared.db.models import Account, Alert, ReconciliationResult, StreamCoverage
from shared.services import reconciliation
from shared.sources.binance.etl import run_etl


def _run_days(account, engine, skip=()):
    history = account.history
    for day in range(1, history.days + 1):
        if day in skip:
            continue
        account.simulator.now = history.start + timedelta(days=day, minutes=30)
        account.ingest()
        run_etl(engine, account.settings, account.data_source_id)


def _results(data_source_id):
    with unit_of_work() as db:
        rows = db.execute(
            select(ReconciliationResult, Account.type)
            .join(Account, Account.id == ReconciliationResult.account_id)
            .where(
                ReconciliationResult.data_source_id == data_source_id,
                ReconciliationResult.current.is_(True),
            )
        ).all()
    return [(result, kind) for result, kind in rows]


def _reconcile_all(account):
    history = account.history
    first, last = history.start.date(), (history.end - timedelta(days=1)).date()
    return reconciliation.reconcile(bootstrap(), account.data_source_id, first, last)


def test_every_day_with_an_opening_read_matches(binance_account, engine):
    account = binance_account(seed=3, days=6)
    _run_days(account, engine)
    run = _reconcile_all(account)
    results = _results(account.data_source_id)
    first_day = account.history.start.date()
    provable = [r for r, _ in results if r.day > first_day]
    assert provable and all(r.status.value == "matched" for r in provable)
    # The first day has no read closing the day before it: not provable, and said so.
    opening_day = [r for r, _ in results if r.day == first_day]
    assert opening_day and {r.status.value for r in opening_day} == {"missing_data"}
    assert run.counts["mismatch"] == 0


def test_a_planted_change_is_one_mismatch_alerted_once_and_mailed(binance_account, engine):
    from tests.conftest import MAIL

    account = binance_account(seed=5, days=5)
    history = account.history
    planted_at = history.start + timedelta(days=2, hours=12)
    when = int(planted_at.timestamp() * 1000)
    # A balance change that no endpoint reports (what a missing product would look like).
    planted = Event(when, "planted", {}, moves=((("spot", None, None), "USDT", Decimal("7.25")),))
    index = bisect.bisect_right([event.time for event in history.events], when)
    history.events.insert(index, planted)
    _run_days(account, engine)
    MAIL.messages.clear()
    _reconcile_all(account)
    mismatches = [
        (r, kind) for r, kind in _results(account.data_source_id) if r.status.value == "mismatch"
    ]
    assert [(kind, r.asset, r.day, r.difference) for r, kind in mismatches] == [
        ("spot", "USDT", planted_at.date(), Decimal("7.25"))
    ]
    # Re-running the day replaces its results and raises nothing new.
    _reconcile_all(account)
    reconciliation.reconcile(
        bootstrap(), account.data_source_id, planted_at.date(), planted_at.date()
    )
    with unit_of_work() as db:
        alerts = (
            db.execute(
                select(Alert).where(
                    Alert.data_source_id == account.data_source_id, Alert.day == planted_at.date()
                )
            )
            .scalars()
            .all()
        )
        current = db.execute(
            select(func.count())
            .select_from(ReconciliationResult)
            .where(
                ReconciliationResult.data_source_id == account.data_source_id,
                ReconciliationResult.day == planted_at.date(),
                ReconciliationResult.status == "mismatch",
                ReconciliationResult.current.is_(True),
            )
        ).scalar()
    assert len(alerts) == 1 and alerts[0].notified_at is not None
    assert alerts[0].findings[0]["difference"] == "7.250000000000000000"
    assert current == 1
    mails = [m for m in MAIL.messages if planted_at.date().isoformat() in m["Subject"]]
    assert len(mails) == 1
    assert "USDT" in mails[0].get_body(("plain",)).get_content()


def test_a_day_without_a_balance_read_is_missing_data(binance_account, engine):
    account = binance_account(seed=9, days=5)
    _run_days(account, engine, skip={3})
    _reconcile_all(account)
    by_day = {}
    for result, _ in _results(account.data_source_id):
        by_day.setdefault(result.day, set()).add((result.status.value, result.reason))
    start = account.history.start.date()
    day3, day4 = start + timedelta(days=2), start + timedelta(days=3)
    assert by_day[day3] == {("missing_data", "no balance snapshot closes the day")}
    assert by_day[day4] == {("missing_data", "no balance snapshot closes the day before")}
    assert {status for status, _ in by_day[start + timedelta(days=1)]} == {"matched"}


def test_an_uncovered_stream_makes_its_accounts_missing_data(binance_account, engine):
    account = binance_account(seed=4, days=4)
    _run_days(account, engine)
    start = account.history.start.date()
    gap = datetime.combine(start + timedelta(days=3), datetime.min.time(), UTC)
    with unit_of_work() as db:
        # As Binance's look-back limit would have left it: nothing before `gap` was fetched.
        db.execute(
            update(StreamCoverage)
            .where(StreamCoverage.data_source_id == account.data_source_id,
                   StreamCoverage.stream == "usdm_income")
            .values(fetched_from=gap, unavailable_before=gap,
                    reason="Binance keeps USD-M income for the last 3 months only")
        )  # fmt: skip
    _reconcile_all(account)
    day = start + timedelta(days=2)
    usdm = [
        r for r, kind in _results(account.data_source_id) if kind == "usdm_futures" and r.day == day
    ]
    assert usdm and all(r.status.value == "missing_data" for r in usdm)
    assert all("usdm_income" in r.reason for r in usdm)
    spot = [r for r, kind in _results(account.data_source_id) if kind == "spot" and r.day == day]
    assert spot and all(r.status.value == "matched" for r in spot)


@pytest.mark.parametrize("tolerance", [Decimal("7.25"), Decimal("7.24")])
def test_a_tolerance_is_applied_and_shown(binance_account, engine, monkeypatch, tolerance):
    account = binance_account(seed=6, days=3)
    history = account.history
    when = int((history.start + timedelta(days=1, hours=6)).timestamp() * 1000)
    index = bisect.bisect_right([event.time for event in history.events], when)
    history.events.insert(
        index, Event(when, "planted", {}, moves=((("spot", None, None), "USDT", Decimal("7.25")),))
    )
    _run_days(account, engine)
    runtime = bootstrap()
    settings = runtime.settings.model_copy(
        update={"reconciliation_tolerances": {"USDT": tolerance}}
    )
    monkeypatch.setattr(runtime, "settings", settings)
    _reconcile_all(account)
    [planted] = [
        r
        for r, kind in _results(account.data_source_id)
        if kind == "spot" and r.asset == "USDT" and r.difference
    ]
    assert planted.tolerance == tolerance
    assert planted.status.value == ("matched" if tolerance >= Decimal("7.25") else "mismatch")
