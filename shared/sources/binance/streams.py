"""The Binance history streams, one declarative line each (reference §0 and §3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.sources.binance.records import RECORD_TYPES

DAY = timedelta(days=1)
# Binance opened on 2017-07-14: no history of any stream can be older.
HISTORY_START = datetime(2017, 7, 14, tzinfo=UTC)
# Universal transfer types (reference §3.11) that touch the accounts Coinfrs reconciles; the
# isolated ones are asked per isolated pair.
TRANSFER_TYPES = (
    "MAIN_UMFUTURE",
    "MAIN_CMFUTURE",
    "MAIN_MARGIN",
    "UMFUTURE_MAIN",
    "UMFUTURE_MARGIN",
    "CMFUTURE_MAIN",
    "CMFUTURE_MARGIN",
    "MARGIN_MAIN",
    "MARGIN_UMFUTURE",
    "MARGIN_CMFUTURE",
    "MAIN_FUNDING",
    "FUNDING_MAIN",
    "FUNDING_UMFUTURE",
    "UMFUTURE_FUNDING",
    "MARGIN_FUNDING",
    "FUNDING_MARGIN",
    "FUNDING_CMFUTURE",
    "CMFUTURE_FUNDING",
    "MAIN_OPTION",
    "OPTION_MAIN",
    "UMFUTURE_OPTION",
    "OPTION_UMFUTURE",
    "MARGIN_OPTION",
    "OPTION_MARGIN",
    "FUNDING_OPTION",
    "OPTION_FUNDING",
    "MAIN_PORTFOLIO_MARGIN",
    "PORTFOLIO_MARGIN_MAIN",
)
# Deposits and withdrawals are listed before they complete, with a non-final status, and later
# under the same id with the final one. Staging rows are immutable (ON CONFLICT DO NOTHING), so
# a non-final row is never stored: it is fetched again until it is final. Every run walks these
# streams again from SETTLE_REWALK before Binance's time (or from the oldest row still pending,
# if older), so a row that completes later is stored with its final status.
SETTLE_REWALK = timedelta(days=7)
DEPOSIT_PENDING = frozenset({0, 8})  # pending, waiting user confirmation (reference §3.2)
WITHDRAWAL_PENDING = frozenset({0, 2, 4})  # email sent, awaiting approval, processing
ISOLATED_TRANSFER_TYPES = {
    "ISOLATEDMARGIN_MARGIN": "fromSymbol",
    "MARGIN_ISOLATEDMARGIN": "toSymbol",
}


def _bare(reply: Any) -> list[dict[str, Any]]:
    return list(reply or [])


def _key(name: str) -> Callable[[Any], list[dict[str, Any]]]:
    def rows(reply: Any) -> list[dict[str, Any]]:
        return list((reply or {}).get(name) or [])

    return rows


def _withdraw_time(row: dict[str, Any]) -> int:
    # applyTime is a "YYYY-MM-DD HH:MM:SS" UTC string (reference §3.2), not ms.
    parsed = datetime.strptime(row["applyTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _status_in(statuses: frozenset[int]) -> Callable[[dict[str, Any]], bool]:
    def pending(row: dict[str, Any]) -> bool:
        try:
            return int(row.get("status")) in statuses  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False  # stored: the ETL reports a status it cannot read

    return pending


@dataclass(frozen=True)
class Stream:
    """One history stream: where it is read, how wide a window may be, how far back, how it
    pages, where its rows and their time are, and which partitions it is asked for.

    paging: `from_id` (fromId = last id + 1), `offset`, `page` and `current` (page numbers),
    `split` (no page parameter: a full answer halves the window), `single` (one call)."""

    record_type: str
    path: str
    weight: int
    paging: str
    page_size: int
    time_field: str
    window: timedelta | None = None
    lookback: timedelta | None = None
    rows: Callable[[Any], list[dict[str, Any]]] = _bare
    partitions: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    uid: bool = False
    size_param: str = "limit"
    start_param: str = "startTime"
    end_param: str = "endTime"
    # Convert answers `moreData` instead of being pageable.
    more: Callable[[Any], bool] | None = None
    row_time: Callable[[dict[str, Any]], int] | None = None
    lookback_reason: str | None = None
    # The product (margin, usdm, coinm) the stream reads: skipped when the user never opened it.
    product: str | None = None
    # Rows not final yet (see SETTLE_REWALK): not stored, fetched again next run.
    pending: Callable[[dict[str, Any]], bool] | None = None

    @property
    def name(self) -> str:
        return self.record_type

    def time_of(self, row: dict[str, Any]) -> int:
        return self.row_time(row) if self.row_time else int(row[self.time_field])


_EARN = "/sapi/v1/simple-earn"
STREAMS: tuple[Stream, ...] = (
    Stream("deposit", "/sapi/v1/capital/deposit/hisrec", 1, "offset", 1000, "insertTime",
           window=90 * DAY - timedelta(milliseconds=1), pending=_status_in(DEPOSIT_PENDING)),
    Stream("withdrawal", "/sapi/v1/capital/withdraw/history", 18000, "offset", 1000, "applyTime",
           window=90 * DAY - timedelta(milliseconds=1), uid=True, row_time=_withdraw_time,
           pending=_status_in(WITHDRAWAL_PENDING)),
    Stream("convert", "/sapi/v1/convert/tradeFlow", 3000, "split", 1000, "createTime",
           window=30 * DAY, rows=_key("list"), uid=True,
           more=lambda reply: bool((reply or {}).get("moreData"))),
    Stream("dust", "/sapi/v1/asset/dribblet", 1, "single", 100, "operateTime",
           rows=_key("userAssetDribblets")),
    Stream("margin_dust", "/sapi/v1/margin/dribblet", 1, "single", 100, "operateTime",
           rows=_key("userAssetDribblets"), product="margin"),
    Stream("asset_dividend", "/sapi/v1/asset/assetDividend", 10, "split", 500, "divTime",
           window=180 * DAY, rows=_key("rows")),
    Stream("universal_transfer", "/sapi/v1/asset/transfer", 1, "current", 100, "timestamp",
           window=7 * DAY, lookback=180 * DAY, rows=_key("rows"), partitions="transfer_types",
           size_param="size",
           lookback_reason="Binance keeps universal transfers for the last 6 months only"),
    Stream("fiat_order", "/sapi/v1/fiat/orders", 45000, "page", 500, "createTime",
           window=90 * DAY, rows=_key("data"), partitions="fiat_types", uid=True,
           size_param="rows", start_param="beginTime"),
    Stream("fiat_payment", "/sapi/v1/fiat/payments", 1, "page", 500, "createTime",
           window=90 * DAY, rows=_key("data"), partitions="fiat_types", size_param="rows",
           start_param="beginTime"),
    Stream("earn_flexible_subscription", f"{_EARN}/flexible/history/subscriptionRecord", 150,
           "current", 100, "time", window=30 * DAY, rows=_key("rows"), size_param="size"),
    Stream("earn_flexible_redemption", f"{_EARN}/flexible/history/redemptionRecord", 150,
           "current", 100, "time", window=30 * DAY, rows=_key("rows"), size_param="size"),
    Stream("earn_flexible_reward", f"{_EARN}/flexible/history/rewardsRecord", 150, "current",
           100, "time", window=30 * DAY, rows=_key("rows"), size_param="size",
           params={"type": "ALL"}),
    Stream("earn_locked_subscription", f"{_EARN}/locked/history/subscriptionRecord", 150,
           "current", 100, "time", window=30 * DAY, rows=_key("rows"), size_param="size"),
    Stream("earn_locked_redemption", f"{_EARN}/locked/history/redemptionRecord", 150,
           "current", 100, "time", window=30 * DAY, rows=_key("rows"), size_param="size"),
    Stream("earn_locked_reward", f"{_EARN}/locked/history/rewardsRecord", 150, "current", 100,
           "time", window=30 * DAY, rows=_key("rows"), size_param="size"),
    Stream("margin_borrow_repay", "/sapi/v1/margin/borrow-repay", 10, "current", 100,
           "timestamp", window=7 * DAY, rows=_key("rows"), partitions="borrow_repay",
           size_param="size", product="margin"),
    Stream("margin_interest", "/sapi/v1/margin/interestHistory", 1, "current", 100,
           "interestAccuredTime", window=30 * DAY, lookback=90 * DAY, rows=_key("rows"),
           partitions="margin_accounts", size_param="size",
           lookback_reason="Binance keeps margin interest for the last 90 days only",
           product="margin"),
    Stream("usdm_income", "/fapi/v1/income", 30, "page", 1000, "time", window=7 * DAY,
           lookback=90 * DAY,
           lookback_reason="Binance keeps USD-M income for the last 3 months only; older "
           "history needs the /fapi/v1/income/asyn export", product="usdm"),
    Stream("coinm_income", "/dapi/v1/income", 20, "page", 1000, "time", window=365 * DAY,
           product="coinm"),
    Stream("sub_account_transfer", "/sapi/v1/sub-account/universalTransfer", 1, "page", 500,
           "createTimeStamp", window=7 * DAY - timedelta(milliseconds=1), rows=_key("result"),
           partitions="sub_transfers"),
    Stream("spot_trade", "/api/v3/myTrades", 20, "from_id", 1000, "time",
           partitions="spot_symbols"),
    Stream("margin_trade", "/sapi/v1/margin/myTrades", 10, "from_id", 1000, "time",
           partitions="margin_symbols", product="margin"),
)  # fmt: skip
STREAMS_BY_NAME = {stream.name: stream for stream in STREAMS}
assert set(STREAMS_BY_NAME) == set(RECORD_TYPES), "every record type has exactly one stream"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def source_raw_id(record_type: str, row: dict[str, Any], context: dict[str, Any]) -> str:
    """records.py's id template filled from the row, where `_context` (the query: a transfer
    type, BORROW/REPAY) overrides it; booleans as JSON writes them."""
    values = {name: _text(value) for name, value in {**row, **context}.items()}
    return RECORD_TYPES[record_type].source_raw_id.format_map(values)
