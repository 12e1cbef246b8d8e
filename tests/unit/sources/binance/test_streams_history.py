"""The simulator's account history: replaying its provider rows gives its balances every day."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from infra.simulators.binance_history import (
    SYMBOLS,
    TRANSFER_ACCOUNTS,
    History,
    master_email,
    ms,
)
from shared.sources.binance.records import RECORD_TYPES
from shared.sources.binance.streams import STREAMS_BY_NAME, source_raw_id

D = Decimal


def _moves(
    stream: str, row: dict[str, Any], context: dict[str, Any]
) -> list[tuple[Any, str, Decimal]]:
    """Binance's meaning of one row, written from the reference, not from the generator."""
    spot, funding, earn = ("spot", None, None), ("funding", None, None), ("earn", None, None)
    if stream == "deposit":
        return [((spot, funding)[row["walletType"]], row["coin"], D(row["amount"]))]
    if stream == "withdrawal":
        total = D(row["amount"]) + D(row["transactionFee"])
        return [((spot, funding)[row["walletType"]], row["coin"], -total)]
    if stream in ("spot_trade", "margin_trade"):
        account = spot
        if stream == "margin_trade":
            account = (
                ("isolated_margin", None, row["symbol"])
                if row["isIsolated"]
                else ("cross_margin", None, None)
            )
        base, quote, _ = SYMBOLS[row["symbol"]]
        qty = D(row["qty"])
        quote_qty = (
            D(row["quoteQty"])
            if "quoteQty" in row
            else (qty * D(row["price"])).quantize(D("0.00000001"))
        )
        sign = 1 if row["isBuyer"] else -1
        return [
            (account, base, sign * qty),
            (account, quote, -sign * quote_qty),
            (account, row["commissionAsset"], -D(row["commission"])),
        ]
    if stream == "convert":
        return [
            (spot, row["fromAsset"], -D(row["fromAmount"])),
            (spot, row["toAsset"], D(row["toAmount"])),
        ]
    if stream == "dust":
        moves = []
        for detail in row["userAssetDribbletDetails"]:
            moves.append((spot, detail["fromAsset"], -D(detail["amount"])))
            net = D(detail["transferedAmount"]) - D(detail["serviceChargeAmount"])
            moves.append((spot, detail["targetAsset"], net))
        return moves
    if stream == "asset_dividend":
        return [(spot, row["asset"], row["direction"] * D(row["amount"]))]
    if stream == "universal_transfer":
        source, target = TRANSFER_ACCOUNTS[row["type"]]
        return [(source, row["asset"], -D(row["amount"])), (target, row["asset"], D(row["amount"]))]
    if stream == "fiat_order":
        sign = 1 if context["transactionType"] == 0 else -1
        return [(funding, row["fiatCurrency"], sign * D(row["amount"]))]
    if stream == "fiat_payment":
        return [(spot, row["cryptoCurrency"], D(row["obtainAmount"]))]
    if stream in ("earn_flexible_subscription", "earn_locked_subscription"):
        return [
            (spot, row["asset"], -D(row["amtFromSpot"])),
            (funding, row["asset"], -D(row["amtFromFunding"])),
            (earn, row["asset"], D(row["amount"])),
        ]
    if stream in ("earn_flexible_redemption", "earn_locked_redemption"):
        dest = {"SPOT": spot, "FUNDING": funding}[row["destAccount"]]
        return [(earn, row["asset"], -D(row["amount"])), (dest, row["asset"], D(row["amount"]))]
    if stream == "earn_flexible_reward":
        return [(earn, row["asset"], D(row["rewards"]))]
    if stream == "earn_locked_reward":
        return [(spot, row["asset"], D(row["amount"]))]
    if stream == "margin_borrow_repay":
        return []  # free and liability move together: the net balance does not
    if stream == "margin_interest":
        return [(("cross_margin", None, None), row["asset"], -D(row["interest"]))]
    if stream in ("usdm_income", "coinm_income"):
        if row["incomeType"] == "TRANSFER":
            return []  # the universal transfer row carries this movement
        account = ("usdm_futures" if stream == "usdm_income" else "coinm_futures", None, None)
        return [(account, row["asset"], D(row["income"]))]
    if stream == "sub_account_transfer":
        kinds = {"SPOT": "spot", "MARGIN": "cross_margin", "USDT_FUTURE": "usdm_futures"}

        def who(email: str, kind: str) -> Any:
            return (kinds[kind], None if email == master_email() else email, None)

        return [
            (who(row["fromEmail"], row["fromAccountType"]), row["asset"], -D(row["amount"])),
            (who(row["toEmail"], row["toAccountType"]), row["asset"], D(row["amount"])),
        ]
    raise AssertionError(f"no meaning for {stream}")


@pytest.mark.parametrize("seed", [0, 1, "x"])
def test_replaying_rows_gives_every_end_of_day_balance(seed) -> None:
    history = History(seed, days=12)
    balances: dict[Any, Decimal] = defaultdict(Decimal)
    events = iter(history.events)
    pending = next(events, None)
    for day in range(1, history.days + 1):
        day_end = ms(history.start + timedelta(days=day)) - 1
        while pending is not None and pending.time <= day_end:
            for account, asset, delta in _moves(pending.stream, pending.row, pending.context):
                balances[(*account, asset)] += delta
            pending = next(events, None)
        replayed = {k: v for k, v in balances.items() if v}
        assert replayed == history.balances_at(day_end), f"day {day}"
        for (kind, *_rest), amount in replayed.items():
            if kind in ("spot", "funding", "earn", "usdm_futures", "coinm_futures"):
                assert amount >= 0


def test_history_is_deterministic_and_exercises_every_stream() -> None:
    one, two = History(3), History(3)
    assert [e.row for e in one.events] == [e.row for e in two.events]
    assert {e.stream for e in one.events} >= set(RECORD_TYPES) - {
        "margin_dust",
        "earn_locked_redemption",
    }
    assert History(4).events != one.events


def test_every_row_has_a_unique_source_raw_id() -> None:
    history = History(5, days=20)
    ids = set()
    for event in history.events:
        context = {k: v for k, v in event.context.items() if k in ("type", "transactionType")}
        if event.stream == "universal_transfer":
            context = {}
        ids.add((event.stream, source_raw_id(event.stream, event.row, context)))
    assert len(ids) == len(history.events)


def test_every_record_type_has_one_declared_stream() -> None:
    assert set(STREAMS_BY_NAME) == set(RECORD_TYPES)
    for stream in STREAMS_BY_NAME.values():
        assert stream.page_size > 0
        assert stream.paging in ("from_id", "offset", "page", "current", "split", "single")
        if stream.paging in ("offset", "page", "current", "split"):
            assert stream.window is not None, stream.name


def test_a_user_without_margin_or_futures_has_no_event_there() -> None:
    history = History(6, days=12, products={"spot", "funding", "earn"})
    touched = {account[0] for e in history.events for account, _a, _d in e.moves}
    assert touched.isdisjoint({"cross_margin", "isolated_margin", "coinm_futures"})
    assert not any(k[0] == "usdm_futures" and k[1] is None for k in history.balances_at(10**14))
    assert {e.stream for e in history.events}.isdisjoint(
        {"margin_trade", "margin_interest", "margin_borrow_repay", "usdm_income", "coinm_income"}
    )
    assert not history.opened("margin") and history.opened("usdm", "sub1@coinfrs.test")
    assert not history.opened("usdm", "sub2@coinfrs.test")


def test_sub1_futures_are_funded_from_the_master() -> None:
    history = History(7, days=3)
    balances = history.balances_at(history.end)
    assert balances[("usdm_futures", "sub1@coinfrs.test", None, "USDT")] == Decimal(250)


@pytest.mark.parametrize("kind", ["deposit", "withdrawal"])
def test_a_pending_row_is_served_pending_then_final_under_one_id(kind) -> None:
    options = {f"pending_{kind}_day": 1}
    history = History(8, days=4, **options)
    (event,) = [e for e in history.events if e.settles_at is not None]
    stream = STREAMS_BY_NAME[kind]
    assert stream.pending is not None
    before, after = event.row_at(event.settles_at - 1), event.row_at(event.settles_at)
    assert before["id"] == after["id"]
    assert stream.pending(before) and not stream.pending(after)
    wallet = ("spot", "funding")[event.row["walletType"]]
    key = (wallet, None, None, event.row["coin"])

    def step(at: int) -> Decimal:  # what happened to the balance exactly at `at`
        return history.balances_at(at).get(key, D(0)) - history.balances_at(at - 1).get(key, D(0))

    if kind == "deposit":  # credited once completed
        assert not event.moved(event.settles_at - 1) and event.moved(event.settles_at)
        assert step(event.time) == 0 and step(event.settles_at) == D(event.row["amount"])
    else:  # debited when applied for
        assert event.moved(event.time)
        total = D(event.row["amount"]) + D(event.row["transactionFee"])
        assert step(event.time) == -total and step(event.settles_at) == 0


def test_final_statuses_are_stored_and_unreadable_ones_left_to_the_etl() -> None:
    deposit, withdrawal = STREAMS_BY_NAME["deposit"], STREAMS_BY_NAME["withdrawal"]
    assert deposit.pending and withdrawal.pending
    assert [s for s in range(10) if deposit.pending({"status": s})] == [0, 8]
    assert [s for s in range(10) if withdrawal.pending({"status": s})] == [0, 2, 4]
    assert deposit.pending({"status": "0"}) and not deposit.pending({"status": "x"})
    assert not deposit.pending({})
