"""Products a user never opened (margin, futures) and sub-account balances beyond spot."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest

from infra.simulators.binance_history import SUB_ACCOUNTS, History, ms
from shared.errors import ProviderRefused
from shared.sources.binance.client import Client
from shared.sources.binance.credentials import HmacCredentials
from shared.sources.binance.etl import run_etl
from tests.integration.sources.binance.ingestion_fixtures import (
    coverage,
    expected_rows,
    snapshots,
    staged,
)
from tests.integration.sources.binance.test_ledger_closes import _movements, _own_snapshots

SUB1, SUB2 = SUB_ACCOUNTS
MARGIN_STREAMS = {"margin_dust", "margin_borrow_repay", "margin_interest", "margin_trade"}


def _not_opened(report) -> set[tuple[str, str | None, int]]:
    return {
        (e["product"], e["sub_account"], e["provider_code"]) for e in report.products_not_opened
    }


def test_an_account_without_margin_or_futures_is_ingested_and_says_so(binance_account) -> None:
    history = History(21, days=5, products={"spot", "funding", "earn"})
    account = binance_account(history=history)
    report = account.ingest(page_size=4)

    assert not any(
        e.stream in MARGIN_STREAMS | {"usdm_income", "coinm_income"} for e in history.events
    )
    # Binance's answers: -3003 for margin, -2015 on fapi/dapi (the key still reads, so the
    # product is not opened); sub-accounts keep their own products.
    assert {(p, s, c) for p, s, c in _not_opened(report) if s is None} == {
        ("margin", None, -3003),
        ("usdm", None, -2015),
        ("coinm", None, -2015),
    }
    assert all(e["reason"] for e in report.products_not_opened)
    skipped = {s["stream"] for s in report.streams_skipped}
    assert skipped == MARGIN_STREAMS | {"usdm_income", "coinm_income"}
    assert not skipped & set(report.streams_done)
    assert {"deposit", "spot_trade", "universal_transfer"} <= set(report.streams_done)
    rows = {(r.stream, r.partition): r for r in coverage(account.data_source_id)}
    for stream in skipped:
        assert "not opened" in rows[(stream, "")].reason
        assert rows[(stream, "")].fetched_from is None

    # Nothing of a skipped product was asked for beyond the one balance read that said so.
    paths = [path for _method, path in account.simulator.requests]
    assert paths.count("/sapi/v1/margin/account") == 1
    assert "/sapi/v1/margin/isolated/account" not in paths
    assert not [p for p in paths if p.startswith("/sapi/v1/margin/") and "account" not in p]
    assert paths.count("/fapi/v3/balance") == 1 and paths.count("/dapi/v1/balance") == 1
    assert not [p for p in paths if p.endswith("/income")]
    assert "/sapi/v1/account/apiRestrictions" in paths

    own = {
        (r.account_type, r.sub_account_id)
        for r in snapshots(account.data_source_id)
        if not r.account_type.startswith("account_snapshot")
    }
    assert {t for t, s in own if s is None} == {"spot", "funding", "earn"}
    daily = {r.account_type for r in snapshots(account.data_source_id)} - {t for t, _ in own}
    assert daily == {"account_snapshot_spot"}
    got = {(t, i) for t, i, _ in staged(account.data_source_id)}
    assert got == expected_rows(history, ms(account.simulator.now))

    # A second run asks the same and stores nothing new.
    again = account.ingest(page_size=4)
    assert again.records_inserted == 0 and len(again.streams_skipped) == len(skipped)


def test_only_the_missing_product_is_skipped(binance_account) -> None:
    history = History(22, days=4, products={"spot", "funding", "earn", "usdm", "coinm"})
    account = binance_account(history=history)
    report = account.ingest()
    assert {s["stream"] for s in report.streams_skipped} == MARGIN_STREAMS
    assert {"usdm_income", "coinm_income"} <= set(report.streams_done)
    got = {(t, i) for t, i, _ in staged(account.data_source_id)}
    assert {t for t, _ in got} >= {"usdm_income", "coinm_income"}
    assert got == expected_rows(history, ms(account.simulator.now))


def test_a_rejected_key_still_fails_the_run(binance_account, binance_simulator) -> None:
    account = binance_account(seed=23, days=2)
    binance_simulator.set_profile(account.credentials.api_key, "rejected")
    with pytest.raises(ProviderRefused) as caught:
        account.ingest()
    assert caught.value.details == {"credentials": {"provider_code": -2015}}
    assert not snapshots(account.data_source_id)


@pytest.mark.parametrize("profile", ["rejected", "no_reading"])
def test_minus_2015_is_not_opened_only_for_a_key_that_still_reads(
    binance_account, binance_simulator, profile
) -> None:
    """A key rejected (or unable to read) after its spot read must not pass as 'not opened'."""
    account = binance_account(seed=24, days=2)
    api_key, secret = binance_simulator.add_hmac_key(profile, history=account.history)
    client = Client(
        account.settings, HmacCredentials(api_key=api_key, api_secret=secret), sleep=lambda _: None
    )
    refused = ProviderRefused(
        "Binance rejected the API key", {"credentials": {"provider_code": -2015}}
    )
    if profile == "rejected":
        with pytest.raises(ProviderRefused):
            client.product_not_opened(refused)
    else:
        assert client.product_not_opened(refused) is None
    good = Client(account.settings, account.credentials, sleep=lambda _: None)
    assert good.product_not_opened(refused) == -2015


def test_sub_account_margin_and_futures_are_snapshotted(binance_account) -> None:
    account = binance_account(seed=25, days=3)
    report = account.ingest()
    now = account.simulator.now
    expected = account.history.balances_at(now)
    own = {
        (r.account_type, r.sub_account_id): r
        for r in snapshots(account.data_source_id)
        if not r.account_type.startswith("account_snapshot")
    }
    futures = own[("usdm_futures", SUB1)]
    assert {b["asset"]: Decimal(b["walletBalance"]) for b in futures.balances} == {
        k[3]: v for k, v in expected.items() if k[:3] == ("usdm_futures", SUB1, None)
    }
    assert Decimal(futures.balances[0]["walletBalance"]) == Decimal(250)
    assert own[("cross_margin", SUB1)].balances == []
    assert futures.snapshot_timestamp == now.replace(microsecond=0)
    assert {(p, s) for p, s, _c in _not_opened(report) if s is not None} == {
        ("coinm", SUB1),
        ("margin", SUB2),
        ("usdm", SUB2),
        ("coinm", SUB2),
    }
    assert ("margin", SUB2, -3003) in _not_opened(report)
    assert ("usdm", SUB2, -4109) in _not_opened(report)


def _ledger_mismatches(account, engine) -> list[tuple]:
    history = account.history
    for day in range(1, history.days + 1):
        account.simulator.now = history.start + timedelta(days=day, minutes=30)
        account.ingest()
        report = run_etl(engine, account.settings, account.data_source_id)
        assert report.failed == 0, report.failures
    reads = _own_snapshots(engine, account.data_source_id)
    instants = sorted({as_of for series in reads.values() for as_of, _ in series})
    mismatches = []
    for (account_id, *identity), series in reads.items():
        held = dict(series)
        full = [(instant, held.get(instant, {})) for instant in instants]
        for (opened_at, opening), (closed_at, closing) in itertools.pairwise(full):
            moved = _movements(engine, account_id, opened_at, closed_at)
            for asset in set(opening) | set(closing) | set(moved):
                expected = opening.get(asset, Decimal(0)) + moved.get(asset, Decimal(0))
                if closing.get(asset, Decimal(0)) != expected:
                    mismatches.append((*identity, asset, closed_at.date()))
    return mismatches


def test_every_day_closes_without_margin_or_futures(binance_account, engine) -> None:
    history = History(26, days=5, products={"spot", "funding", "earn"})
    assert _ledger_mismatches(binance_account(history=history), engine) == []


def test_sub_account_futures_moves_close(binance_account, engine) -> None:
    """Money leaving a sub-account's futures mid-history (seen from the master: no income feed
    for the sub's futures) is booked from the sub-account transfer, and every day closes."""
    history = History(30, days=6, sub_futures_moves=True)
    first_read = ms(history.start + timedelta(days=1, minutes=30))
    moves = {
        (e.time - ms(history.start)) // 86_400_000 + 1
        for e in history.events
        if e.stream == "sub_account_transfer"
        and e.row["fromAccountType"] == "USDT_FUTURE"
        and e.time > first_read
    }
    assert moves
    assert _ledger_mismatches(binance_account(history=history), engine) == []


def test_a_product_opened_later_is_fetched_and_its_reason_cleared(binance_account) -> None:
    history = History(28, days=4)
    account = binance_account(history=history)
    history.products = frozenset({"spot", "funding", "earn", "usdm", "coinm"})
    first = account.ingest()
    assert {s["stream"] for s in first.streams_skipped} == MARGIN_STREAMS
    history.products = frozenset(history.products | {"margin"})
    second = account.ingest()
    assert second.streams_skipped == [] and second.products_not_opened == [
        e for e in second.products_not_opened if e["sub_account"] is not None
    ]
    rows = {(r.stream, r.partition): r for r in coverage(account.data_source_id)}
    assert rows[("margin_interest", "")].reason is None
    got = {(t, i) for t, i, _ in staged(account.data_source_id)}
    assert got == expected_rows(history, ms(account.simulator.now))
