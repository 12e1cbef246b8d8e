"""A seeded Binance account history whose every event moves balances exactly as Binance would."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

DAY_MS = 86_400_000
# (account_type, sub_account email or None, key (isolated pair) or None)
Account = tuple[str, str | None, str | None]
BalanceKey = tuple[str, str | None, str | None, str]

SPOT: Account = ("spot", None, None)
FUNDING: Account = ("funding", None, None)
CROSS: Account = ("cross_margin", None, None)
USDM: Account = ("usdm_futures", None, None)
COINM: Account = ("coinm_futures", None, None)
EARN: Account = ("earn", None, None)
ISOLATED_PAIR = "ETHUSDT"
ISOLATED: Account = ("isolated_margin", None, ISOLATED_PAIR)
SUB_ACCOUNTS = ("sub1@coinfrs.test", "sub2@coinfrs.test")
# The products a Binance user may open (or never open): spot, funding and earn always exist.
PRODUCTS = frozenset({"spot", "funding", "earn", "margin", "usdm", "coinm"})
BASIC_PRODUCTS = frozenset({"spot", "funding", "earn"})
# What each sub-account opened: sub1 has (empty) margin and USD-M futures, sub2 spot only.
SUB_PRODUCTS: dict[str, frozenset[str]] = {
    SUB_ACCOUNTS[0]: frozenset({"spot", "margin", "usdm"}),
    SUB_ACCOUNTS[1]: frozenset({"spot"}),
}
# canonical account type -> the product it belongs to
PRODUCT_OF = {
    "spot": "spot",
    "funding": "funding",
    "earn": "earn",
    "cross_margin": "margin",
    "isolated_margin": "margin",
    "usdm_futures": "usdm",
    "coinm_futures": "coinm",
}
# Sub-account universal transfer account type (reference §3.12) -> canonical account type
SUB_ACCOUNT_TYPES = {
    "SPOT": "spot",
    "MARGIN": "cross_margin",
    "USDT_FUTURE": "usdm_futures",
    "COIN_FUTURE": "coinm_futures",
}

# symbol -> (base, quote, reference price)
SYMBOLS: dict[str, tuple[str, str, Decimal]] = {
    "BTCUSDT": ("BTC", "USDT", Decimal("60000")),
    "ETHUSDT": ("ETH", "USDT", Decimal("3000")),
    "BNBUSDT": ("BNB", "USDT", Decimal("600")),
    "ETHBTC": ("ETH", "BTC", Decimal("0.05")),
    "XYZUSDT": ("XYZ", "USDT", Decimal("2")),
}
# Listed in exchangeInfo for the first half of the history only; -1121 on myTrades afterwards.
DELISTED_SYMBOL = "XYZUSDT"
# Universal transfer type -> (from account, to account)
TRANSFER_ACCOUNTS: dict[str, tuple[Account, Account]] = {
    "MAIN_FUNDING": (SPOT, FUNDING),
    "FUNDING_MAIN": (FUNDING, SPOT),
    "MAIN_MARGIN": (SPOT, CROSS),
    "MARGIN_MAIN": (CROSS, SPOT),
    "MAIN_UMFUTURE": (SPOT, USDM),
    "UMFUTURE_MAIN": (USDM, SPOT),
    "MAIN_CMFUTURE": (SPOT, COINM),
    "CMFUTURE_MAIN": (COINM, SPOT),
    "MARGIN_ISOLATEDMARGIN": (CROSS, ISOLATED),
    "ISOLATEDMARGIN_MARGIN": (ISOLATED, CROSS),
}
Q8 = Decimal("0.00000001")


def s(amount: Decimal) -> str:
    """Binance's decimal strings: 8 places."""
    return str(amount.quantize(Q8))


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


@dataclass(frozen=True)
class Event:
    """One provider record and what it does to balances.

    `row` is the record exactly as the endpoint serves it; `context` says which query returns it
    (symbol, transfer type, isolated pair...); `moves` are balance deltas; `liabilities` the
    margin (borrowed, interest) deltas, which change free but not net balances.

    `settles_at`: a record Binance lists from `time` on with a non-final status (`pending`, the
    row served before then) and the final `row` from `settles_at` on. A deposit moves balances
    only once it completes (`moves_when_settled`); a withdrawal leaves them when applied for."""

    time: int
    stream: str
    row: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    moves: tuple[tuple[Account, str, Decimal], ...] = ()
    liabilities: tuple[tuple[Account, str, Decimal, Decimal], ...] = ()
    settles_at: int | None = None
    pending: dict[str, Any] | None = None
    moves_when_settled: bool = True

    def row_at(self, now_ms: int) -> dict[str, Any]:
        """The row as Binance serves it at `now_ms`: pending until it settles."""
        if self.pending is not None and self.settles_at is not None and now_ms < self.settles_at:
            return dict(self.pending)
        return dict(self.row)

    def settled(self, now_ms: int) -> bool:
        return self.settles_at is None or self.settles_at <= now_ms

    def moved(self, now_ms: int) -> bool:
        """Whether the balances reflect the event at `now_ms` (it happened by then)."""
        return self.time <= now_ms and (not self.moves_when_settled or self.settled(now_ms))


class History:
    """Events of one master account (and its sub-accounts) over `days` UTC days from `start`."""

    def __init__(
        self,
        seed: int | str = 0,
        *,
        days: int = 10,
        start: date = date(2026, 1, 1),
        products: frozenset[str] | set[str] = PRODUCTS,
        pending_deposit_day: int | None = None,
        pending_withdrawal_day: int | None = None,
        sub_futures_moves: bool = False,
    ) -> None:
        """`products`: what the master opened (margin, usdm, coinm may be missing: Binance then
        answers "not opened" errors and no event touches them). `pending_deposit_day`: a
        deposit inserted late on that day (0-based) stays pending (status 0) over the next
        00:30 UTC and completes at 02:00, crediting the balance only then.
        `pending_withdrawal_day`: likewise a withdrawal applied for at 23:55 on that day,
        processing (status 4) at the next 00:30 and completed (6) at 02:00; the balance is
        debited when it is applied for, as Binance does.
        `sub_futures_moves`: sub1 also moves USDT from its USD-M futures to the master's spot
        during the history (by default sub1's futures are funded once, on the first day, before
        any daily read: the ETL books no futures leg of a sub-account transfer, see
        test_ingestion_products.py)."""
        self.seed, self.days = seed, days
        self.start = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.end = self.start + timedelta(days=days)
        self.sub_accounts = SUB_ACCOUNTS
        self.products = frozenset(products) | BASIC_PRODUCTS
        self.sub_products = dict(SUB_PRODUCTS)
        self.pending_deposit_day = pending_deposit_day
        self.pending_withdrawal_day = pending_withdrawal_day
        self.sub_futures_moves = sub_futures_moves
        self.delisted_at = ms(self.start + timedelta(days=max(1, days // 2)))
        self.events: list[Event] = []
        self._rng = random.Random(f"binance-history:{seed}")
        self._balances: dict[BalanceKey, Decimal] = defaultdict(Decimal)
        self._liab: dict[tuple[Account, str], list[Decimal]] = defaultdict(
            lambda: [Decimal(0), Decimal(0)]
        )
        self._ids = 100_000
        self._generate()
        self.events.sort(key=lambda event: event.time)
        self._times = [event.time for event in self.events]

    @classmethod
    def empty(cls) -> History:
        return cls(days=0)

    # -- queries --------------------------------------------------------------------------------

    def visible(self, now_ms: int) -> list[Event]:
        return [event for event in self.events if event.time <= now_ms]

    def opened(self, product: str, sub: str | None = None) -> bool:
        """Whether the master (or sub-account `sub`) opened `product` (margin, usdm, coinm...)."""
        products = self.products if sub is None else self.sub_products.get(sub, frozenset())
        return product in products

    def _open(self, account: Account) -> bool:
        return self.opened(PRODUCT_OF[account[0]], account[1])

    def balances_at(self, instant: datetime | int) -> dict[BalanceKey, Decimal]:
        """Net balances after every event at or before `instant` (zeros left out)."""
        return {k: v for k, v in self._replay(instant)[0].items() if v != 0}

    def liabilities_at(self, instant: datetime | int) -> dict[tuple[Account, str], list[Decimal]]:
        """(account, asset) -> [borrowed, interest] at `instant`."""
        return self._replay(instant)[1]

    def _replay(self, instant: datetime | int) -> tuple[dict, dict]:
        limit = instant if isinstance(instant, int) else ms(instant)
        balances: dict[BalanceKey, Decimal] = defaultdict(Decimal)
        liab: dict[tuple[Account, str], list[Decimal]] = defaultdict(
            lambda: [Decimal(0), Decimal(0)]
        )
        for event in self.events:
            if event.time > limit:
                break
            if not event.moved(limit):
                continue
            for account, asset, delta in event.moves:
                balances[(*account, asset)] += delta
            for account, asset, borrowed, interest in event.liabilities:
                liab[(account, asset)][0] += borrowed
                liab[(account, asset)][1] += interest
        return balances, liab

    def listed_symbols(self, now_ms: int) -> list[str]:
        return [sym for sym in SYMBOLS if sym != DELISTED_SYMBOL or now_ms < self.delisted_at]

    # -- generation -----------------------------------------------------------------------------

    def _id(self) -> int:
        self._ids += self._rng.randint(1, 9)
        return self._ids

    def _amount(self, low: str, high: str, places: int = 4) -> Decimal:
        scale = 10**places
        lo, hi = int(Decimal(low) * scale), int(Decimal(high) * scale)
        return Decimal(self._rng.randint(lo, hi)) / scale

    def _has(self, account: Account, asset: str, amount: Decimal) -> bool:
        if not self._open(account):
            return False
        # Margin accounts may spend what they borrowed: free = net + borrowed + interest.
        borrowed, interest = self._liab.get((account, asset), (0, 0))
        return self._balances[(*account, asset)] + borrowed + interest >= amount

    def _add(self, event: Event) -> None:
        assert all(self._open(account) for account, _asset, _delta in event.moves), event
        # A pending event is not spendable before it settles: leave it out of what is held.
        later = event.settles_at is not None and event.moves_when_settled
        for account, asset, delta in () if later else event.moves:
            self._balances[(*account, asset)] += delta
        for account, asset, borrowed, interest in event.liabilities:
            self._liab[(account, asset)][0] += borrowed
            self._liab[(account, asset)][1] += interest
        self.events.append(event)

    def _generate(self) -> None:
        for day in range(self.days):
            base = ms(self.start) + day * DAY_MS
            # Distinct whole seconds keep withdrawal times (second strings) ordered and exact.
            seconds = sorted(self._rng.sample(range(60, 86_000), 60))
            slots = iter(base + second * 1000 for second in seconds)
            if day == 0:
                self._opening(slots)
            self._day(day, slots)
            if day == self.pending_deposit_day:
                self._pending_deposit(base)
            if day == self.pending_withdrawal_day:
                self._pending_withdrawal(base)

    def _opening(self, slots: Any) -> None:
        for asset, amount, wallet in (
            ("USDT", Decimal(20000), 0),
            ("BTC", Decimal(2), 0),
            ("ETH", Decimal(20), 0),
            ("BNB", Decimal(10), 0),
            ("USDT", Decimal(3000), 1),
        ):
            self._deposit(next(slots), asset, amount, wallet)
        for kind, asset, amount, extra in (
            ("MAIN_FUNDING", "USDT", Decimal(500), {}),
            ("MAIN_MARGIN", "USDT", Decimal(5000), {}),
            ("MAIN_UMFUTURE", "USDT", Decimal(3000), {}),
            ("MAIN_CMFUTURE", "BTC", Decimal("0.2"), {}),
            ("MARGIN_ISOLATEDMARGIN", "USDT", Decimal(1000), {"toSymbol": ISOLATED_PAIR}),
        ):
            self._transfer(next(slots), kind, asset, amount, extra)
        self._sub_transfer(next(slots), None, SUB_ACCOUNTS[0], "USDT", Decimal(800))
        self._sub_transfer(next(slots), None, SUB_ACCOUNTS[1], "USDT", Decimal(300))
        # Master spot -> sub1's USD-M futures: the master key sees it only as a balance of sub1.
        self._sub_transfer(
            next(slots), None, SUB_ACCOUNTS[0], "USDT", Decimal(250), to_type="USDT_FUTURE"
        )
        self._trade(next(slots), "XYZUSDT", True, Decimal(500))

    def _day(self, day: int, slots: Any) -> None:
        rng = self._rng
        actions = ["trade"] * 8 + ["deposit", "convert", "usdm", "coinm", "earn_reward"]
        actions += ["margin_trade", "interest", "transfer", "locked_reward"]
        if day % 2 == 0:
            actions += ["withdrawal", "dividend", "sub_transfer"]
        if day % 3 == 1:
            actions += ["fiat_order", "dust", "borrow"]
        if day % 4 == 2:
            actions += ["fiat_payment", "repay", "isolated_trade"]
        if day == 1:
            actions += ["earn_subscribe", "locked_subscribe"]
        if day % 5 == 4:
            actions += ["earn_redeem"]
        rng.shuffle(actions)
        for action in actions:
            getattr(self, f"_do_{action}")(next(slots))

    # -- one method per kind of event -------------------------------------------------------------

    def _deposit(self, t: int, asset: str, amount: Decimal, wallet: int) -> None:
        row = {
            "id": str(self._id()),
            "amount": s(amount),
            "coin": asset,
            "network": asset if asset != "USDT" else "ETH",
            "status": 1,
            "address": "0xsimulated",
            "addressTag": "",
            "txId": f"0x{self._id():x}",
            "insertTime": t,
            "completeTime": t,
            "transferType": 0,
            "confirmTimes": "12/12",
            "unlockConfirm": 0,
            "walletType": wallet,
            "travelRuleStatus": 0,
        }
        self._add(Event(t, "deposit", row, moves=(((SPOT, FUNDING)[wallet], asset, amount),)))

    def _pending_deposit(self, day_start: int) -> None:
        # Inserted at 23:53:20.5, listed as pending (status 0) until it completes at 02:00 the
        # next day: a daily run at 00:30 sees it pending, the next one completed, same id.
        t, settles = day_start + 86_000_500, day_start + DAY_MS + 2 * 3_600_000
        self._deposit(t, "USDT", Decimal("123.45"), 1)
        done = self.events.pop()
        for account, asset, delta in done.moves:
            self._balances[(*account, asset)] -= delta
        row = {**done.row, "completeTime": settles}
        pending = {**done.row, "status": 0, "confirmTimes": "3/12"}
        pending.pop("completeTime")
        self.events.append(
            Event(t, "deposit", row, moves=done.moves, settles_at=settles, pending=pending)
        )

    def _do_deposit(self, t: int) -> None:
        asset = self._rng.choice(["USDT", "ETH", "BNB"])
        amount = self._amount("1", "50") if asset != "USDT" else self._amount("100", "2000")
        self._deposit(t, asset, amount, self._rng.choice([0, 0, 1]))

    def _do_withdrawal(self, t: int) -> None:
        asset, amount, fee = self._rng.choice(
            [
                ("USDT", self._amount("50", "500"), Decimal(1)),
                ("ETH", Decimal("0.5"), Decimal("0.002")),
            ]
        )
        wallet = self._rng.choice([0, 1]) if asset == "USDT" else 0
        account = (SPOT, FUNDING)[wallet]
        if not self._has(account, asset, amount + fee):
            return
        when = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        row = {
            "id": f"w{self._id()}",
            "amount": s(amount),
            "transactionFee": s(fee),
            "coin": asset,
            "status": 6,
            "address": "0xelsewhere",
            "txId": f"0x{self._id():x}",
            "applyTime": when,
            "network": "ETH",
            "transferType": 0,
            "info": "",
            "confirmNo": 12,
            "walletType": wallet,
            "txKey": "",
            "completeTime": when,
        }
        self._add(Event(t, "withdrawal", row, moves=((account, asset, -(amount + fee)),)))

    def _pending_withdrawal(self, day_start: int) -> None:
        t, settles = day_start + 86_100_000, day_start + DAY_MS + 2 * 3_600_000
        amount, fee = Decimal(100), Decimal(1)
        if not self._has(SPOT, "USDT", amount + fee):
            return
        when = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        done = datetime.fromtimestamp(settles / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        row = {
            "id": f"w{self._id()}",
            "amount": s(amount),
            "transactionFee": s(fee),
            "coin": "USDT",
            "status": 6,
            "address": "0xelsewhere",
            "txId": f"0x{self._id():x}",
            "applyTime": when,
            "network": "ETH",
            "transferType": 0,
            "info": "",
            "confirmNo": 12,
            "walletType": 0,
            "txKey": "",
            "completeTime": done,
        }
        pending = {**row, "status": 4, "txId": "", "confirmNo": 0}
        pending.pop("completeTime")
        moves = ((SPOT, "USDT", -(amount + fee)),)
        self._add(
            Event(
                t,
                "withdrawal",
                row,
                moves=moves,
                settles_at=settles,
                pending=pending,
                moves_when_settled=False,
            )
        )

    def _trade(
        self,
        t: int,
        symbol: str,
        buyer: bool,
        qty: Decimal,
        account: Account = SPOT,
        stream: str = "spot_trade",
    ) -> bool:
        base, quote, price = SYMBOLS[symbol]
        price = (price * self._amount("0.98", "1.02")).quantize(Q8)
        quote_qty = (qty * price).quantize(Q8)
        received, received_qty = (base, qty) if buyer else (quote, quote_qty)
        paid, paid_qty = (quote, quote_qty) if buyer else (base, qty)
        # Pay fees in BNB when there is enough of it (pitfall 5), else in the received asset.
        bnb_fee = (
            (quote_qty * SYMBOLS.get(f"{quote}USDT", (0, 0, Decimal(1)))[2])
            / Decimal(600)
            * Decimal("0.00075")
        )
        bnb_fee = bnb_fee.quantize(Q8)
        use_bnb = account == SPOT and self._rng.random() < 0.5 and received != "BNB"
        use_bnb = use_bnb and paid != "BNB" and self._has(account, "BNB", bnb_fee)
        if use_bnb:
            fee_asset, fee = "BNB", bnb_fee
        else:
            fee_asset, fee = received, (received_qty * Decimal("0.001")).quantize(Q8)
        if not self._has(account, paid, paid_qty):
            return False
        trade_id = self._id()
        row: dict[str, Any] = {
            "symbol": symbol,
            "id": trade_id,
            "orderId": trade_id * 10,
            "orderListId": -1,
            "price": s(price),
            "qty": s(qty),
            "quoteQty": s(quote_qty),
            "commission": s(fee),
            "commissionAsset": fee_asset,
            "time": t,
            "isBuyer": buyer,
            "isMaker": self._rng.random() < 0.5,
            "isBestMatch": True,
        }
        context: dict[str, Any] = {"symbol": symbol}
        if stream == "margin_trade":
            row.pop("orderListId")
            row.pop("quoteQty")
            row["isIsolated"] = account[0] == "isolated_margin"
            context["isIsolated"] = row["isIsolated"]
        moves = (
            (account, received, received_qty),
            (account, paid, -paid_qty),
            (account, fee_asset, -fee),
        )
        self._add(Event(t, stream, row, context, moves=moves))
        return True

    def _do_trade(self, t: int) -> None:
        # Binance halts trading on a pair it delists a day or more before removing it from
        # exchangeInfo, so a daily run still fetches the last fills while the pair is listed.
        halt = self.delisted_at - DAY_MS
        symbols = [sym for sym in self.listed_symbols(t) if sym != DELISTED_SYMBOL or t < halt]
        symbol = self._rng.choice(symbols)
        base, _quote, _price = SYMBOLS[symbol]
        qty = {"BTC": self._amount("0.001", "0.05"), "ETH": self._amount("0.01", "1")}.get(
            base, self._amount("0.1", "2") if base == "BNB" else self._amount("10", "100")
        )
        self._trade(t, symbol, self._rng.random() < 0.5, qty)

    def _do_convert(self, t: int) -> None:
        pairs = [("USDT", "ETH", Decimal(1) / 3000), ("BTC", "USDT", Decimal(60000))]
        from_asset, to_asset, ratio = self._rng.choice(pairs)
        amount = (
            self._amount("20", "200") if from_asset == "USDT" else self._amount("0.001", "0.01")
        )
        if not self._has(SPOT, from_asset, amount):
            return
        to_amount = (amount * ratio).quantize(Q8)
        row = {
            "quoteId": f"q{self._id()}",
            "orderId": self._id(),
            "orderStatus": "SUCCESS",
            "fromAsset": from_asset,
            "fromAmount": s(amount),
            "toAsset": to_asset,
            "toAmount": s(to_amount),
            "ratio": s(ratio),
            "inverseRatio": s(1 / ratio),
            "createTime": t,
            "walletType": "SPOT",
        }
        moves = ((SPOT, from_asset, -amount), (SPOT, to_asset, to_amount))
        self._add(Event(t, "convert", row, moves=moves))

    def _do_dust(self, t: int) -> None:
        asset = self._rng.choice(["ETH", "BTC"])
        amount = self._amount("0.0001", "0.0009")
        if not self._has(SPOT, asset, amount):
            return
        transfered = (amount * SYMBOLS[f"{asset}USDT"][2] / 600).quantize(Q8)
        charge = (transfered * Decimal("0.02")).quantize(Q8)
        trans_id = self._id()
        detail = {
            "transId": trans_id,
            "serviceChargeAmount": s(charge),
            "amount": s(amount),
            "operateTime": t,
            "transferedAmount": s(transfered),
            "fromAsset": asset,
            "targetAsset": "BNB",
        }
        row = {
            "operateTime": t,
            "totalTransferedAmount": s(transfered),
            "totalServiceChargeAmount": s(charge),
            "transId": trans_id,
            "userAssetDribbletDetails": [detail],
        }
        # Reference §3.4: the BNB credited is transferedAmount net of serviceChargeAmount.
        moves = ((SPOT, asset, -amount), (SPOT, "BNB", transfered - charge))
        self._add(Event(t, "dust", row, moves=moves))

    def _do_dividend(self, t: int) -> None:
        amount = self._amount("0.001", "0.05")
        row = {
            "id": self._id(),
            "amount": s(amount),
            "asset": "BNB",
            "divTime": t,
            "enInfo": "BNB Vault",
            "tranId": self._id(),
            "direction": 1,
        }
        self._add(Event(t, "asset_dividend", row, moves=((SPOT, "BNB", amount),)))

    def _transfer(self, t: int, kind: str, asset: str, amount: Decimal, extra: dict) -> bool:
        source, target = TRANSFER_ACCOUNTS[kind]
        if not self._has(source, asset, amount):
            return False
        tran_id = self._id()
        row = {
            "asset": asset,
            "amount": s(amount),
            "type": kind,
            "status": "CONFIRMED",
            "tranId": tran_id,
            "timestamp": t,
            **extra,
        }
        context = {"type": kind, **extra}
        moves = ((source, asset, -amount), (target, asset, amount))
        if not self._open(target):
            return False
        self._add(Event(t, "universal_transfer", row, context, moves=moves))
        # The same movement shows up again as a futures TRANSFER income row (moving nothing twice).
        for account, sign in ((source, -1), (target, 1)):
            if account in (USDM, COINM):
                self._income(t, account, "TRANSFER", asset, sign * amount, tran_id, moves=False)
        return True

    def _do_transfer(self, t: int) -> None:
        kind = self._rng.choice(
            [
                "MAIN_FUNDING",
                "FUNDING_MAIN",
                "MAIN_MARGIN",
                "MARGIN_MAIN",
                "MAIN_UMFUTURE",
                "UMFUTURE_MAIN",
                "MARGIN_ISOLATEDMARGIN",
                "ISOLATEDMARGIN_MARGIN",
                "CMFUTURE_MAIN",
            ]
        )
        asset = "BTC" if kind == "CMFUTURE_MAIN" else "USDT"
        amount = Decimal("0.01") if asset == "BTC" else self._amount("10", "100")
        extra = {}
        if kind == "MARGIN_ISOLATEDMARGIN":
            extra = {"toSymbol": ISOLATED_PAIR}
        elif kind == "ISOLATEDMARGIN_MARGIN":
            extra = {"fromSymbol": ISOLATED_PAIR}
        self._transfer(t, kind, asset, amount, extra)

    def _income(
        self,
        t: int,
        account: Account,
        kind: str,
        asset: str,
        amount: Decimal,
        tran_id: int | None = None,
        *,
        moves: bool = True,
    ) -> None:
        if not self._open(account):
            return
        usdm = account == USDM
        tran = tran_id or self._id()
        row = {
            "symbol": "" if kind == "TRANSFER" else ("BTCUSDT" if usdm else "BTCUSD_PERP"),
            "incomeType": kind,
            "income": s(amount),
            "asset": asset,
            "info": kind,
            "time": t,
            # fapi tranId is a number, dapi a string (reference §3.10).
            "tranId": tran if usdm else str(tran),
            "tradeId": "" if kind not in ("REALIZED_PNL", "COMMISSION") else str(self._id()),
        }
        stream = "usdm_income" if usdm else "coinm_income"
        self._add(Event(t, stream, row, moves=((account, asset, amount),) if moves else ()))

    def _do_usdm(self, t: int) -> None:
        for kind, low, high in (
            ("REALIZED_PNL", "-20", "25"),
            ("FUNDING_FEE", "-2", "1"),
            ("COMMISSION", "-1", "-0.1"),
        ):
            amount = self._amount(low, high)
            if amount and self._has(USDM, "USDT", -amount):
                self._income(t, USDM, kind, "USDT", amount)

    def _do_coinm(self, t: int) -> None:
        amount = self._amount("-0.0002", "0.0001", 6)
        if amount and self._has(COINM, "BTC", -amount):
            self._income(t, COINM, "FUNDING_FEE", "BTC", amount)

    def _do_fiat_order(self, t: int) -> None:
        indicated = self._amount("100", "1000", 2)
        fee = (indicated * Decimal("0.01")).quantize(Decimal("0.01"))
        row = {
            "orderNo": f"fo{self._id()}",
            "fiatCurrency": "EUR",
            "indicatedAmount": str(indicated),
            "amount": str(indicated - fee),
            "totalFee": str(fee),
            "method": "BankAccount",
            "status": "Successful",
            "createTime": t,
            "updateTime": t,
        }
        context = {"transactionType": 0}
        self._add(Event(t, "fiat_order", row, context, moves=((FUNDING, "EUR", indicated - fee),)))

    def _do_fiat_payment(self, t: int) -> None:
        obtained = self._amount("0.001", "0.01")
        row = {
            "orderNo": f"fp{self._id()}",
            "sourceAmount": s(obtained * 60000),
            "fiatCurrency": "EUR",
            "obtainAmount": s(obtained),
            "cryptoCurrency": "BTC",
            "totalFee": "1.5",
            "price": "60000",
            "status": "Completed",
            "paymentMethod": "Card",
            "createTime": t,
            "updateTime": t,
        }
        context = {"transactionType": 0}
        self._add(Event(t, "fiat_payment", row, context, moves=((SPOT, "BTC", obtained),)))

    def _do_earn_subscribe(self, t: int) -> None:
        amount = Decimal(1000)
        if not self._has(SPOT, "USDT", amount):
            return
        row = {
            "amount": s(amount),
            "asset": "USDT",
            "time": t,
            "purchaseId": self._id(),
            "productId": "USDT001",
            "type": "NORMAL",
            "sourceAccount": "SPOT",
            "amtFromSpot": s(amount),
            "amtFromFunding": "0",
            "status": "SUCCESS",
        }
        moves = ((SPOT, "USDT", -amount), (EARN, "USDT", amount))
        self._add(Event(t, "earn_flexible_subscription", row, moves=moves))

    def _do_earn_reward(self, t: int) -> None:
        if not self._has(EARN, "USDT", Decimal("0.0001")):
            return
        amount = self._amount("0.01", "0.3")
        row = {
            "asset": "USDT",
            "rewards": s(amount),
            "projectId": "USDT001",
            "type": "REALTIME",
            "time": t,
        }
        self._add(Event(t, "earn_flexible_reward", row, moves=((EARN, "USDT", amount),)))

    def _do_earn_redeem(self, t: int) -> None:
        amount = Decimal(300)
        if not self._has(EARN, "USDT", amount):
            return
        row = {
            "amount": s(amount),
            "asset": "USDT",
            "time": t,
            "projectId": "USDT001",
            "redeemId": self._id(),
            "destAccount": "SPOT",
            "status": "PAID",
        }
        moves = ((EARN, "USDT", -amount), (SPOT, "USDT", amount))
        self._add(Event(t, "earn_flexible_redemption", row, moves=moves))

    def _do_locked_subscribe(self, t: int) -> None:
        amount = Decimal(2)
        if not self._has(SPOT, "BNB", amount):
            return
        row = {
            "positionId": 777,
            "purchaseId": self._id(),
            "projectId": "BNB*30",
            "time": t,
            "asset": "BNB",
            "amount": s(amount),
            "lockPeriod": "30",
            "type": "NORMAL",
            "sourceAccount": "SPOT",
            "amtFromSpot": s(amount),
            "amtFromFunding": "0",
            "status": "SUCCESS",
        }
        moves = ((SPOT, "BNB", -amount), (EARN, "BNB", amount))
        self._add(Event(t, "earn_locked_subscription", row, moves=moves))

    def _do_locked_reward(self, t: int) -> None:
        if not self._has(EARN, "BNB", Decimal(1)):
            return
        amount = self._amount("0.0001", "0.001", 6)
        row = {
            "positionId": 777,
            "time": t,
            "asset": "BNB",
            "lockPeriod": "30",
            "amount": s(amount),
            "type": "REWARDS",
        }
        # Locked rewards are paid into spot (records.py: earn_locked_reward -> earn, spot).
        self._add(Event(t, "earn_locked_reward", row, moves=((SPOT, "BNB", amount),)))

    def _do_margin_trade(self, t: int) -> None:
        buyer = self._rng.random() < 0.5
        self._trade(t, "BTCUSDT", buyer, self._amount("0.001", "0.01"), CROSS, "margin_trade")

    def _do_isolated_trade(self, t: int) -> None:
        buyer = self._rng.random() < 0.7
        self._trade(t, ISOLATED_PAIR, buyer, self._amount("0.01", "0.1"), ISOLATED, "margin_trade")

    def _do_borrow(self, t: int) -> None:
        if not self._open(CROSS):
            return
        amount = self._amount("0.01", "0.05")
        row = {
            "type": "MANUAL",
            "isolatedSymbol": "",
            "amount": s(amount),
            "asset": "BTC",
            "interest": "0",
            "principal": s(amount),
            "status": "CONFIRMED",
            "timestamp": t,
            "txId": self._id(),
        }
        # Borrowing adds free BTC and an equal liability: the net balance does not move.
        event = Event(
            t,
            "margin_borrow_repay",
            row,
            {"type": "BORROW"},
            liabilities=((CROSS, "BTC", amount, Decimal(0)),),
        )
        self._add(event)

    def _do_interest(self, t: int) -> None:
        borrowed = self._liab[(CROSS, "BTC")][0]
        if borrowed <= 0:
            return
        interest = (borrowed * Decimal("0.0001")).quantize(Q8)
        row = {
            "txId": self._id(),
            "interestAccuredTime": t,
            "asset": "BTC",
            "rawAsset": "BTC",
            "principal": s(borrowed),
            "interest": s(interest),
            "interestRate": "0.00010000",
            "type": "PERIODIC",
            "isolatedSymbol": "",
        }
        # Interest accrues as a liability: the net balance falls by it.
        event = Event(
            t,
            "margin_interest",
            row,
            moves=((CROSS, "BTC", -interest),),
            liabilities=((CROSS, "BTC", Decimal(0), interest),),
        )
        self._add(event)

    def _do_repay(self, t: int) -> None:
        borrowed, interest = self._liab[(CROSS, "BTC")]
        if borrowed <= 0 or not self._has(CROSS, "BTC", Decimal(0)):
            return
        free = self._balances[(*CROSS, "BTC")] + borrowed + interest
        if free < borrowed + interest:
            return
        row = {
            "type": "MANUAL",
            "isolatedSymbol": "",
            "amount": s(borrowed + interest),
            "asset": "BTC",
            "interest": s(interest),
            "principal": s(borrowed),
            "status": "CONFIRMED",
            "timestamp": t,
            "txId": self._id(),
        }
        event = Event(
            t,
            "margin_borrow_repay",
            row,
            {"type": "REPAY"},
            liabilities=((CROSS, "BTC", -borrowed, -interest),),
        )
        self._add(event)

    def _sub_transfer(
        self,
        t: int,
        source: str | None,
        target: str | None,
        asset: str,
        amount: Decimal,
        *,
        from_type: str = "SPOT",
        to_type: str = "SPOT",
    ) -> None:
        src: Account = (SUB_ACCOUNT_TYPES[from_type], source, None)
        dst: Account = (SUB_ACCOUNT_TYPES[to_type], target, None)
        if not self._has(src, asset, amount) or not self._open(dst):
            return
        row = {
            "tranId": self._id(),
            "fromEmail": source or "master@coinfrs.test",
            "toEmail": target or "master@coinfrs.test",
            "asset": asset,
            "amount": s(amount),
            "createTimeStamp": t,
            "fromAccountType": from_type,
            "toAccountType": to_type,
            "status": "SUCCESS",
            "clientTranId": "",
        }
        moves = ((src, asset, -amount), (dst, asset, amount))
        self._add(Event(t, "sub_account_transfer", row, moves=moves))

    def _do_sub_transfer(self, t: int) -> None:
        choices = [
            (None, SUB_ACCOUNTS[0], "SPOT"),
            (SUB_ACCOUNTS[0], None, "SPOT"),
            (SUB_ACCOUNTS[0], SUB_ACCOUNTS[1], "SPOT"),
        ]
        if self.sub_futures_moves:
            choices.append((SUB_ACCOUNTS[0], None, "USDT_FUTURE"))
        source, target, from_type = self._rng.choice(choices)
        amount = self._amount("5", "50")
        self._sub_transfer(t, source, target, "USDT", amount, from_type=from_type)


def master_email() -> str:
    return "master@coinfrs.test"
