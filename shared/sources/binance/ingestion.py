"""Binance history into staging: every stream of streams.py, snapshots, symbol discovery."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shared.config import Settings
from shared.db.models.ingestion import KnownSymbol, StreamCoverage
from shared.db.models.staging import RawBinanceData
from shared.errors import ProviderUnavailable
from shared.sources.binance.client import PROVIDER, TIMEOUT_SECONDS, Client
from shared.sources.binance.snapshots import take_account_snapshots, take_snapshots
from shared.sources.binance.streams import (
    HISTORY_START,
    ISOLATED_TRANSFER_TYPES,
    SETTLE_REWALK,
    STREAMS,
    TRANSFER_TYPES,
    Stream,
    source_raw_id,
)
from shared.sources.common.ingestion import (
    Page,
    SessionFactory,
    Store,
    session_factory,
    to_datetime,
    walk_ids,
    walk_windows,
)

log = logging.getLogger(__name__)

# Start a look-back-limited stream this much inside the limit: Binance measures it from its own
# clock at the moment the call arrives.
LOOKBACK_MARGIN_MS = 60_000
DUST_LIMIT = 100
_NOT_FETCHED = "not fetched: "
# (partition key, request parameters, `_context` added to each row)
Partition = tuple[str, dict[str, Any], dict[str, Any]]

_STAGED_ASSETS = text(
    """
    SELECT DISTINCT value FROM staging.raw_binance_data AS r,
    LATERAL (VALUES (r.raw_payload->>'coin'), (r.raw_payload->>'asset'),
                    (r.raw_payload->>'fromAsset'), (r.raw_payload->>'toAsset'),
                    (r.raw_payload->>'commissionAsset'), (r.raw_payload->>'cryptoCurrency'))
        AS t(value)
    WHERE r.data_source_id = :ds AND value IS NOT NULL
    UNION
    SELECT DISTINCT d->>'fromAsset' FROM staging.raw_binance_data AS r,
    jsonb_array_elements(CASE WHEN jsonb_typeof(r.raw_payload->'userAssetDribbletDetails')
        = 'array' THEN r.raw_payload->'userAssetDribbletDetails' ELSE '[]'::jsonb END) AS d
    WHERE r.data_source_id = :ds
    """
)


@dataclass
class IngestionReport:
    """What one ingestion run did."""

    now: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    streams_done: list[str] = field(default_factory=list)
    pages: int = 0
    records_inserted: int = 0
    api_calls: int = 0
    weight_used: int = 0
    weight_by_meter: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    retries: int = 0
    snapshots: int = 0
    account_snapshots: int = 0
    symbols: list[str] = field(default_factory=list)
    delisted_symbols: list[str] = field(default_factory=list)
    coverage_gaps: list[dict[str, Any]] = field(default_factory=list)
    per_stream: dict[str, dict[str, int]] = field(default_factory=dict)
    # Products Binance says the user (sub_account None) or a sub-account never opened: no
    # snapshot of them, and the master's streams of them are skipped (streams_skipped).
    products_not_opened: list[dict[str, Any]] = field(default_factory=list)
    streams_skipped: list[dict[str, Any]] = field(default_factory=list)
    # Deposits/withdrawals seen with a non-final status: not stored, fetched again next run.
    pending_not_stored: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(
    settings: Settings,
    session_factory_or_engine: Engine | SessionFactory,
    data_source_id: uuid.UUID,
    credentials: BaseModel,
    *,
    start: date | None = None,
    end: date | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    page_size: int | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> IngestionReport:
    """Stage every Binance stream of one data source, and the balances of every account.

    `start`/`end` (UTC days, inclusive) bound the history; by default each stream goes back as
    far as Binance keeps it, up to Binance's time of the first balance read. Resumable: cursors
    are committed with each page, so a second call continues a failed run and, after a
    successful one, fetches only what is new. `sleep`/`clock` are injectable (tests never
    sleep); `page_size` caps every page (tests use it to cross page boundaries).

    A product the user never opened (margin, USD-M, COIN-M: Binance answers -3003, -11001,
    -4109, or -2015 while the key still reads its apiRestrictions) is not an error: it has no
    snapshot, its streams are skipped, and both are said in the report (`products_not_opened`,
    `streams_skipped`) and in the stream coverage. A rejected key still fails the run.
    Deposits and withdrawals not final yet are not stored (`pending_not_stored`); every run
    walks them again from 7 days back, or from the oldest one still pending (streams.py)."""
    client = Client(settings, credentials, timeout=timeout, sleep=sleep, clock=clock)
    run = Ingestor(client, session_factory(session_factory_or_engine), data_source_id)
    run.page_size, run.progress = page_size, progress
    try:
        return run.run(start, end)
    finally:
        run.finish_report()


class Ingestor:
    """One ingestion run of one data source."""

    def __init__(self, client: Client, factory: SessionFactory, data_source_id: uuid.UUID) -> None:
        self.client, self.factory, self.data_source_id = client, factory, data_source_id
        self.store = Store(factory, data_source_id, RawBinanceData.__table__)
        self.report = IngestionReport()
        self.page_size: int | None = None
        self.progress: Callable[[dict[str, Any]], None] | None = None
        self.now_ms = 0
        self.start_ms = 0
        self.end_ms = 0
        self.assets: set[str] = set()
        self.cross_assets: set[str] = set()
        self.isolated_pairs: list[str] = []
        self.sub_accounts: list[str] = []
        self._exchange: dict[str, tuple[str, str, bool]] | None = None
        # (stream, partition) -> the oldest pending row time of this run, the previous mark
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}

    def run(self, start: date | None, end: date | None) -> IngestionReport:
        # Current balances are read on every run, whatever start/end say (CONTRACT.md).
        snapshots = take_snapshots(self.client, self.factory, self.data_source_id)
        assert snapshots.now is not None
        self.report.snapshots = snapshots.rows
        self.assets, self.cross_assets = snapshots.assets, snapshots.cross_assets
        self.isolated_pairs, self.sub_accounts = snapshots.isolated_pairs, snapshots.sub_accounts
        self.report.products_not_opened = snapshots.not_opened
        closed = {
            entry["product"] for entry in snapshots.not_opened if entry["sub_account"] is None
        }
        self.now_ms = int(snapshots.now.timestamp() * 1000)
        self.start_ms = _day_ms(start) if start else int(HISTORY_START.timestamp() * 1000)
        self.end_ms = self.now_ms
        if end is not None:
            self.end_ms = min(self.now_ms, _day_ms(end + timedelta(days=1)) - 1)
        self.report.now, self.report.start = snapshots.now, to_datetime(self.start_ms)
        self.report.end = to_datetime(self.end_ms)
        self.report.account_snapshots = take_account_snapshots(
            self.client, self.factory, self.data_source_id, self.now_ms, closed
        )
        self._reopened(closed)
        for stream in STREAMS:
            if stream.product in closed:
                self._skip(stream, snapshots.not_opened)
                continue
            if stream.partitions == "spot_symbols":
                self._symbols(stream, "spot")
            elif stream.partitions == "margin_symbols":
                self._symbols(stream, "margin")
            else:
                for partition in self._partitions(stream):
                    self._run(stream, partition)
            self.report.streams_done.append(stream.name)
            log.info(
                "binance stream ingested",
                extra={
                    "provider": PROVIDER,
                    "stream": stream.name,
                    "data_source_id": str(self.data_source_id),
                    **self.store.per_stream.get(stream.name, {}),
                },
            )
        return self.report

    def _skip(self, stream: Stream, not_opened: list[dict[str, Any]]) -> None:
        """A stream of a product the user never opened: nothing to fetch, said so (never
        silently) in the coverage and the report."""
        entry = next(
            e for e in not_opened if (e["product"], e["sub_account"]) == (stream.product, None)
        )
        reason = f"{_NOT_FETCHED}{entry['reason']}"
        self.store.coverage(
            stream.name,
            "",
            fetched_from=None,
            fetched_to=None,
            unavailable_before=None,
            reason=reason,
        )
        self.report.streams_skipped.append(
            {"stream": stream.name, "product": stream.product, "reason": reason}
        )
        log.warning(
            "binance stream skipped: product not opened",
            extra={"provider": PROVIDER, "stream": stream.name, "product": stream.product},
        )

    def _reopened(self, closed: set[str]) -> None:
        """A product opened since a run that skipped it: its streams are fetched again, so the
        "not opened" reason no longer holds."""
        opened = [s.name for s in STREAMS if s.product is not None and s.product not in closed]
        with self.factory() as session, session.begin():
            session.execute(
                update(StreamCoverage)
                .where(
                    StreamCoverage.data_source_id == self.data_source_id,
                    StreamCoverage.stream.in_(opened),
                    StreamCoverage.reason.like(f"{_NOT_FETCHED}%"),
                )
                .values(reason=None)
            )

    def finish_report(self) -> None:
        stats = self.client.stats
        self.report.pages, self.report.records_inserted = self.store.pages, self.store.inserted
        self.report.per_stream = self.store.per_stream
        self.report.api_calls, self.report.weight_used = stats.calls, stats.weight
        self.report.weight_by_meter = dict(stats.by_meter)
        self.report.rate_limited, self.report.retries = stats.rate_limited, stats.retries

    # -- partitions ------------------------------------------------------------------------------

    def _partitions(self, stream: Stream) -> list[Partition]:
        kind = stream.partitions
        if kind is None:
            return [("", {}, {})]
        if kind == "transfer_types":
            found: list[Partition] = [(t, {"type": t}, {}) for t in TRANSFER_TYPES]
            for pair in self.isolated_pairs:
                for transfer_type, side in ISOLATED_TRANSFER_TYPES.items():
                    found.append(
                        (
                            f"{transfer_type}:{pair}",
                            {"type": transfer_type, side: pair},
                            {side: pair},
                        )
                    )
            return found
        if kind == "fiat_types":
            return [(str(t), {"transactionType": t}, {"transactionType": t}) for t in (0, 1)]
        if kind == "borrow_repay":
            found = []
            for direction in ("BORROW", "REPAY"):
                found.append((direction, {"type": direction}, {"type": direction}))
                for pair in self.isolated_pairs:
                    query = {"type": direction, "isolatedSymbol": pair}
                    found.append((f"{direction}:{pair}", query, query))
            return found
        if kind == "margin_accounts":
            isolated = [
                (p, {"isolatedSymbol": p}, {"isolatedSymbol": p}) for p in self.isolated_pairs
            ]
            return [("", {}, {}), *isolated]
        if kind == "sub_transfers":
            # Without an email Binance lists what the master sent; each sub's sends separately.
            if not self.sub_accounts:
                return []
            # The rows name both sides by email; which emails are sub-accounts (the rest is the
            # master, whose accounts carry no sub-account) is only known here.
            context = {"sub_accounts": sorted(self.sub_accounts)}
            return [
                ("", {}, context),
                *((f"from:{e}", {"fromEmail": e}, context) for e in self.sub_accounts),
            ]
        raise ValueError(f"unknown partition kind {kind!r}")

    # -- one stream partition --------------------------------------------------------------------

    def _size(self, stream: Stream) -> int:
        return min(stream.page_size, self.page_size or stream.page_size)

    def _save(
        self, stream: Stream, partition: Partition
    ) -> Callable[[list[dict[str, Any]], dict[str, Any]], None]:
        key, _params, context = partition
        pending = stream.pending

        def save(rows: list[dict[str, Any]], cursor: dict[str, Any]) -> None:
            if pending is not None:
                waiting = [row for row in rows if pending(row)]
                rows = [row for row in rows if not pending(row)]
                self._pending_seen(stream, key, waiting, cursor)
            records = [
                (
                    stream.record_type,
                    source_raw_id(stream.record_type, row, context),
                    {**row, "_context": context} if context else row,
                )
                for row in rows
            ]
            inserted = self.store.save_page(stream.name, key, records, cursor)
            if self.progress:
                self.progress(
                    {
                        "stream": stream.name,
                        "partition": key,
                        "rows": len(rows),
                        "inserted": inserted,
                        "pages": self.store.pages,
                        "records_inserted": self.store.inserted,
                    }
                )

        return save

    def _pending_seen(
        self, stream: Stream, key: str, rows: list[dict[str, Any]], cursor: dict[str, Any]
    ) -> None:
        """Keep, in the cursor about to be saved, the oldest row still pending: the next run
        walks again from there. Until this run's walk ends, the previous run's mark stays."""
        state = self._pending.setdefault((stream.name, key), {"since": None})
        for row in rows:
            at = stream.time_of(row)
            state["since"] = at if state["since"] is None else min(state["since"], at)
            self.report.pending_not_stored.append(
                {
                    "stream": stream.name,
                    "id": str(row.get("id")),
                    "status": row.get("status"),
                    "time": to_datetime(at).isoformat(),
                }
            )
        marks = [m for m in (state["since"], state.get("previous")) if m is not None]
        cursor["pending_since"] = min(marks) if marks else None
        state["cursor"] = cursor

    def _rewind(self, stream: Stream, key: str, cursor: dict[str, Any]) -> dict[str, Any]:
        """Walk a stream whose rows settle later again from SETTLE_REWALK before now, or from
        its oldest row still pending (streams.py)."""
        previous = cursor.get("pending_since")
        self._pending[(stream.name, key)] = {"since": None, "previous": previous}
        if "next_start" not in cursor:
            return cursor
        since = self.now_ms - int(SETTLE_REWALK.total_seconds() * 1000)
        if previous is not None:
            since = min(since, int(previous))
        if cursor["next_start"] <= since:
            return cursor
        return {**cursor, "next_start": since, "window_end": None, "position": {}}

    def _settled(self, stream: Stream, key: str) -> None:
        """The walk ended: the pending mark is now this run's alone."""
        state = self._pending.pop((stream.name, key), {})
        cursor = state.get("cursor")
        if cursor is not None and cursor.get("pending_since") != state.get("since"):
            self.store.save_page(stream.name, key, [], {**cursor, "pending_since": state["since"]})

    def _run(self, stream: Stream, partition: Partition) -> dict[str, Any]:
        key, params, _context = partition
        cursor = self.store.cursor(stream.name, key)
        if stream.pending is not None:
            cursor = self._rewind(stream, key, cursor)
        size = self._size(stream)
        save = self._save(stream, partition)
        start_ms, unavailable = self.start_ms, None
        if stream.lookback is not None:
            limit_ms = self.now_ms - int(stream.lookback.total_seconds() * 1000)
            if start_ms < limit_ms:
                start_ms, unavailable = limit_ms + LOOKBACK_MARGIN_MS, to_datetime(limit_ms)

        def request(query: dict[str, Any]) -> Any:
            return self.client.request(
                stream.path,
                {**stream.params, **params, **query},
                weight=stream.weight,
                uid=stream.uid,
            ).data

        if stream.paging == "from_id":
            walk_ids(
                cursor=cursor,
                fetch=lambda from_id: stream.rows(request({"fromId": from_id, "limit": size})),
                page_size=size,
                row_id=lambda row: int(row["id"]),
                row_time=stream.time_of,
                end_ms=self.end_ms,
                save=save,
            )
            return self.store.cursor(stream.name, key)
        if stream.paging == "single":
            rows = stream.rows(request({}))
            rows = [row for row in rows if stream.time_of(row) <= self.end_ms]
            save(rows, {"fetched_to": self.end_ms})
            if len(rows) >= DUST_LIMIT:
                unavailable = to_datetime(min(stream.time_of(row) for row in rows))
                self._coverage(
                    stream,
                    key,
                    unavailable,
                    unavailable,
                    f"Binance returns only the last {DUST_LIMIT} conversions",
                )
            else:
                self._coverage(stream, key, to_datetime(start_ms), None, None)
            return {}

        def fetch(window_start: int, window_end: int, position: dict[str, Any]) -> Page:
            query = {
                stream.start_param: window_start,
                stream.end_param: window_end,
                stream.size_param: size,
            }
            if stream.paging == "offset":
                query["offset"] = position.get("offset", 0)
            elif stream.paging in ("page", "current"):
                query[stream.paging] = position.get(stream.paging, 1)
            reply = request(query)
            rows = stream.rows(reply)
            full = len(rows) >= size
            if stream.paging == "split":
                overflow = stream.more(reply) if stream.more else full
                return Page(rows, None, overflow)
            if not full:
                return Page(rows)
            if stream.paging == "offset":
                return Page(rows, {"offset": position.get("offset", 0) + len(rows)})
            return Page(rows, {stream.paging: position.get(stream.paging, 1) + 1})

        walk_windows(
            start_ms=start_ms,
            end_ms=self.end_ms,
            window_ms=int(stream.window.total_seconds() * 1000) if stream.window else None,
            cursor=cursor,
            fetch=fetch,
            save=save,
        )
        if stream.pending is not None:
            self._settled(stream, key)
        self._coverage(
            stream,
            key,
            to_datetime(start_ms),
            unavailable,
            stream.lookback_reason if unavailable else None,
        )
        return {}

    def _coverage(
        self,
        stream: Stream,
        key: str,
        fetched_from: datetime,
        unavailable: datetime | None,
        reason: str | None,
    ) -> None:
        self.store.coverage(
            stream.name,
            key,
            fetched_from=fetched_from,
            fetched_to=to_datetime(self.end_ms),
            unavailable_before=unavailable,
            reason=reason,
        )
        if unavailable is not None:
            self.report.coverage_gaps.append(
                {
                    "stream": stream.name,
                    "partition": key,
                    "unavailable_before": unavailable.isoformat(),
                    "reason": reason,
                }
            )

    # -- trades: symbol discovery ----------------------------------------------------------------

    def _exchange_info(self) -> dict[str, tuple[str, str, bool]]:
        if self._exchange is None:
            reply = self.client.request("/api/v3/exchangeInfo", weight=20, signed=False)
            self._exchange = {
                item["symbol"]: (
                    item["baseAsset"],
                    item["quoteAsset"],
                    bool(item.get("isMarginTradingAllowed")),
                )
                for item in (reply.data or {}).get("symbols", [])
            }
        return self._exchange

    def _known(
        self, markets: tuple[str, ...]
    ) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        with self.factory() as session:
            rows = session.execute(
                select(
                    KnownSymbol.market,
                    KnownSymbol.symbol,
                    KnownSymbol.base_asset,
                    KnownSymbol.quote_asset,
                ).where(
                    KnownSymbol.data_source_id == self.data_source_id,
                    KnownSymbol.market.in_(markets),
                )
            ).all()
        return {(row.market, row.symbol): (row.base_asset, row.quote_asset) for row in rows}

    def _staged_assets(self) -> set[str]:
        with self.factory() as session:
            return {
                value
                for (value,) in session.execute(_STAGED_ASSETS, {"ds": self.data_source_id})
                if value
            }

    def _register(self, market: str, symbol: str, base: str | None, quote: str | None) -> None:
        with self.factory() as session, session.begin():
            session.execute(
                insert(KnownSymbol)
                .values(
                    data_source_id=self.data_source_id,
                    market=market,
                    symbol=symbol,
                    base_asset=base,
                    quote_asset=quote,
                )
                .on_conflict_do_nothing(index_elements=["data_source_id", "market", "symbol"])
            )

    def _delisted(self, stream: Stream, market: str, symbol: str, key: str) -> None:
        with self.factory() as session, session.begin():
            session.execute(
                update(KnownSymbol)
                .where(
                    KnownSymbol.data_source_id == self.data_source_id,
                    KnownSymbol.market == market,
                    KnownSymbol.symbol == symbol,
                    KnownSymbol.delisted_at.is_(None),
                )
                .values(delisted_at=to_datetime(self.now_ms))
            )
        self.report.delisted_symbols.append(symbol)
        self._coverage(
            stream,
            key,
            to_datetime(self.start_ms),
            to_datetime(self.now_ms),
            "delisted: Binance answers -1121 for this pair; fills not fetched before delisting "
            "are unreachable",
        )

    def _symbols(self, stream: Stream, kind: str) -> None:
        """Every pair whose base or quote the account ever held (reference §3.1), plus every pair
        ever seen, until the set is closed under the assets of the pairs that had fills."""
        exchange = self._exchange_info()
        if kind == "spot":
            markets: tuple[str, ...] = ("spot",)
            assets = self.assets | self._staged_assets()
        else:
            markets = ("cross_margin", "isolated_margin")
            assets = set(self.cross_assets)
        known = self._known(markets)
        done: set[tuple[str, str]] = set()
        while True:
            wanted: dict[tuple[str, str], tuple[str | None, str | None]] = {}
            for symbol, (base, quote, margin) in exchange.items():
                if (base in assets or quote in assets) and (kind == "spot" or margin):
                    wanted[("spot" if kind == "spot" else "cross_margin", symbol)] = (base, quote)
            if kind == "margin":
                for pair in self.isolated_pairs:
                    base, quote = exchange.get(pair, (None, None, False))[:2]
                    wanted[("isolated_margin", pair)] = (base, quote)
            for found, sides in known.items():
                wanted.setdefault(found, sides)
            todo = sorted(set(wanted) - done)
            if not todo:
                return
            for market, symbol in todo:
                done.add((market, symbol))
                base, quote = wanted[(market, symbol)]
                params: dict[str, Any] = {"symbol": symbol}
                key = symbol
                if kind == "margin":
                    isolated = market == "isolated_margin"
                    params["isIsolated"] = "TRUE" if isolated else "FALSE"
                    key = f"{symbol}:{params['isIsolated']}"
                try:
                    cursor = self._run(stream, (key, params, {}))
                except ProviderUnavailable as error:
                    if error.details.get("provider_code") != -1121:
                        raise
                    # rotki's rule: "Invalid symbol" on myTrades is a delisted pair, not a failure.
                    self._delisted(stream, market, symbol, key)
                    continue
                if cursor.get("from_id", 0) > 0:
                    self._register(market, symbol, base, quote)
                    if symbol not in self.report.symbols:
                        self.report.symbols.append(symbol)
                    assets |= {side for side in (base, quote) if side}


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
