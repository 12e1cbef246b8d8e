"""Binance ingestion against the history-backed simulator, through the real client and staging."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra.simulators.binance_history import ms
from shared.errors import ProviderUnavailable
from shared.sources.binance.client import Banned
from tests.integration.sources.binance.ingestion_fixtures import (
    coverage,
    cursors,
    expected_rows,
    known_symbols,
    snapshots,
    staged,
)


def test_every_stream_lands_in_staging_once(binance_account) -> None:
    account = binance_account(seed=1)
    report = account.ingest(page_size=3)

    rows = staged(account.data_source_id)
    got = {(record_type, raw_id) for record_type, raw_id, _payload in rows}
    now = ms(account.simulator.now)
    assert got == expected_rows(account.history, now)
    assert report.records_inserted == len(rows)
    assert {event.stream for event in account.history.events} <= {r[0] for r in got}
    assert report.rate_limited == 0 and report.retries == 0
    assert report.pages > len(report.streams_done)


def test_second_run_changes_nothing(binance_account) -> None:
    account = binance_account(seed=2)
    account.ingest(page_size=4)
    before = staged(account.data_source_id)
    again = account.ingest(page_size=4)
    assert again.records_inserted == 0
    assert staged(account.data_source_id) == before


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_after", [1, 7, 40, 95])
def test_crash_after_any_page_then_resume_gives_identical_staging(
    binance_account, crash_after
) -> None:
    reference = binance_account(seed=3)
    reference.ingest(page_size=3)
    expected = staged(reference.data_source_id)

    account = binance_account(history=reference.history)
    pages = 0

    def crash(_progress: dict) -> None:
        nonlocal pages
        pages += 1
        if pages == crash_after:
            raise Crash

    with pytest.raises(Crash):
        account.ingest(page_size=3, progress=crash)
    partial = staged(account.data_source_id)
    assert partial < expected
    account.ingest(page_size=3)
    assert staged(account.data_source_id) == expected


def test_new_events_only_after_success(binance_account) -> None:
    account = binance_account(seed=4)
    simulator, history = account.simulator, account.history
    simulator.now = history.start + timedelta(days=4, minutes=30)
    first = account.ingest(page_size=5)
    simulator.now = history.end + timedelta(minutes=30)
    calls_before = simulator.feeds.stats["calls"]
    second = account.ingest(page_size=5)
    assert first.records_inserted > 0 and second.records_inserted > 0
    got = {(t, i) for t, i, _ in staged(account.data_source_id)}
    # The delisted pair's fills were fetched by the first run, while it was still listed.
    assert got == expected_rows(history, ms(simulator.now)) | {
        ("spot_trade", f"XYZUSDT:{e.row['id']}")
        for e in history.events
        if e.stream == "spot_trade"
        and e.row["symbol"] == "XYZUSDT"
        and e.time <= ms(history.start + timedelta(days=4, minutes=30))
    }
    assert simulator.feeds.stats["calls"] > calls_before
    assert known_symbols(account.data_source_id)["spot:XYZUSDT"] is not None  # delisted_at
    assert "XYZUSDT" in second.delisted_symbols


def test_daily_runs_catch_everything_including_the_delisted_pair(binance_account) -> None:
    account = binance_account(seed=5)
    history, simulator = account.history, account.simulator
    for day in range(1, history.days + 1):
        simulator.now = history.start + timedelta(days=day, minutes=30)
        report = account.ingest()
        assert report.now == simulator.now.replace(microsecond=0)
    got = {(t, i) for t, i, _ in staged(account.data_source_id)}
    every = {(e.stream, None) for e in history.events}
    assert {t for t, _ in got} == {t for t, _ in every}
    xyz = [e for e in history.events if e.stream == "spot_trade" and e.row["symbol"] == "XYZUSDT"]
    assert xyz and all(("spot_trade", f"XYZUSDT:{e.row['id']}") in got for e in xyz)
    assert len(got) == len(history.events)


def test_snapshots_hold_every_account_at_the_reply_time(binance_account) -> None:
    account = binance_account(seed=6)
    account.ingest()
    rows = snapshots(account.data_source_id)
    own = [r for r in rows if not r.account_type.startswith("account_snapshot")]
    types = {(r.account_type, r.sub_account_id) for r in own}
    assert types == {
        ("spot", None),
        ("funding", None),
        ("cross_margin", None),
        ("isolated_margin", None),
        ("usdm_futures", None),
        ("coinm_futures", None),
        ("earn", None),
        ("spot", "sub1@coinfrs.test"),
        ("spot", "sub2@coinfrs.test"),
        # Beyond spot, sub1 opened margin and USD-M futures; sub2 nothing (reference §3.12).
        ("cross_margin", "sub1@coinfrs.test"),
        ("usdm_futures", "sub1@coinfrs.test"),
    }
    now = account.simulator.now
    assert {r.snapshot_timestamp for r in own} == {now.replace(microsecond=0)}
    expected = account.history.balances_at(now)
    spot = next(r for r in own if (r.account_type, r.sub_account_id) == ("spot", None))
    from decimal import Decimal

    assert {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in spot.balances} == {
        k[3]: v for k, v in expected.items() if k[:3] == ("spot", None, None)
    }
    daily = [r for r in rows if r.account_type.startswith("account_snapshot")]
    assert len(daily) == 3 * account.history.days
    account.ingest()
    again = snapshots(account.data_source_id)
    assert len([r for r in again if r.account_type.startswith("account_snapshot")]) == len(daily)
    assert len(again) == len(rows) + len(own)


def test_look_back_limits_are_recorded_as_coverage(binance_account) -> None:
    account = binance_account(seed=7, days=100)
    report = account.ingest()
    gaps = {g["stream"] for g in report.coverage_gaps}
    assert {"usdm_income", "margin_interest"} <= gaps
    rows = {(r.stream, r.partition): r for r in coverage(account.data_source_id)}
    usdm = rows[("usdm_income", "")]
    assert usdm.unavailable_before is not None and "3 months" in usdm.reason
    assert usdm.unavailable_before > account.history.start
    assert rows[("deposit", "")].unavailable_before is None
    got = {(t, i) for t, i, _ in staged(account.data_source_id)}
    assert got == expected_rows(account.history, ms(account.simulator.now))


def test_server_errors_and_rate_limits_are_retried_and_nothing_is_lost(binance_account) -> None:
    reference = binance_account(seed=8)
    reference.ingest(page_size=4)
    expected = staged(reference.data_source_id)
    account = binance_account(history=reference.history)
    account.simulator.set_fault("server_error", api_key=account.credentials.api_key, every=4)
    account.simulator.set_fault(
        "rate_limited", api_key=account.credentials.api_key, every=7, retry_after=3
    )
    report = account.ingest(page_size=4)
    assert staged(account.data_source_id) == expected
    assert report.retries > 0 and report.rate_limited > 0
    assert 3 in account.clock.slept


def test_persistent_failure_fails_cleanly_and_resumes(binance_account) -> None:
    reference = binance_account(seed=9)
    reference.ingest(page_size=4)
    expected = staged(reference.data_source_id)
    account = binance_account(history=reference.history)
    account.simulator.ingest_count = 0
    account.simulator.set_fault("server_error", api_key=account.credentials.api_key, every=1)
    with pytest.raises(ProviderUnavailable) as caught:
        account.ingest(page_size=4)
    assert "4 times in a row" in caught.value.message
    assert account.clock.slept == [1.0, 2.0, 4.0]
    account.simulator.clear_faults()
    account.ingest(page_size=4)
    assert staged(account.data_source_id) == expected


def test_a_ban_stops_the_run_with_its_end_and_the_run_resumes(binance_account) -> None:
    reference = binance_account(seed=10)
    reference.ingest(page_size=4)
    expected = staged(reference.data_source_id)
    account = binance_account(history=reference.history)
    account.simulator.set_fault(
        "banned", api_key=account.credentials.api_key, every=30, count=1, retry_after=300
    )
    with pytest.raises(Banned) as caught:
        account.ingest(page_size=4)
    assert caught.value.banned_until is not None and "banned" in caught.value.message
    assert cursors(account.data_source_id)
    account.simulator.clear_faults()
    account.ingest(page_size=4)
    assert staged(account.data_source_id) == expected


def test_weight_budgets_are_respected_without_429(binance_account) -> None:
    from datetime import date

    account = binance_account(seed=11)
    # A year of empty windows: fiat orders (45000 UID) allow 4 calls a minute.
    report = account.ingest(start=date(2025, 1, 1))
    assert report.rate_limited == 0
    assert account.simulator.feeds.stats["429"] == 0
    assert any(s > 1 for s in account.clock.slept)


def test_too_wide_windows_are_refused_like_binance(binance_account) -> None:
    from shared.sources.binance.client import Client

    account = binance_account(seed=12)
    client = Client(account.settings, account.credentials, sleep=account.clock.sleep)
    start = ms(account.history.start)
    with pytest.raises(ProviderUnavailable) as caught:
        client.request(
            "/api/v3/myTrades",
            {"symbol": "BTCUSDT", "startTime": start, "endTime": start + 2 * 86_400_000},
        )
    assert caught.value.details["provider_code"] == -1127
    with pytest.raises(ProviderUnavailable) as caught:
        client.request(
            "/sapi/v1/simple-earn/flexible/history/rewardsRecord",
            {"type": "ALL", "startTime": start, "endTime": start + 31 * 86_400_000},
        )
    assert caught.value.details["provider_code"] == -6021
    with pytest.raises(ProviderUnavailable) as caught:
        client.request("/api/v3/myTrades", {"symbol": "XYZUSDT"})
    assert caught.value.details["provider_code"] == -1121
