"""Fixtures of the ingestion tests: a history-backed simulator, a fake clock, staging readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from infra.simulators.binance import BinanceSimulator
from infra.simulators.binance_history import History
from shared.config import Settings
from shared.db.engine import get_engine
from shared.db.models.ingestion import IngestionCursor, KnownSymbol, StreamCoverage
from shared.db.models.staging import RawBinanceData, RawBinancePositionSnapshot
from shared.sources.binance.credentials import HmacCredentials
from shared.sources.binance.ingestion import IngestionReport, ingest


class FakeTime:
    """A clock that only moves when slept on: tests see minutes pass without waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Account:
    """A simulated Binance account behind one read-only key, and its data source."""

    simulator: BinanceSimulator
    settings: Settings
    history: History
    credentials: HmacCredentials
    data_source_id: Any
    clock: FakeTime

    def ingest(self, **options: Any) -> IngestionReport:
        options.setdefault("start", self.history.start.date())
        return ingest(
            self.settings,
            get_engine(),
            self.data_source_id,
            self.credentials,
            sleep=self.clock.sleep,
            clock=self.clock.time,
            **options,
        )


def staged(data_source_id: Any) -> set[tuple[str, str, str]]:
    """(record_type, source_raw_id, payload as text) of every staged row of the data source."""
    with get_engine().connect() as connection:
        rows = connection.execute(
            select(
                RawBinanceData.record_type, RawBinanceData.source_raw_id, RawBinanceData.raw_payload
            ).where(RawBinanceData.data_source_id == data_source_id)
        ).all()
    return {(row[0], row[1], repr(sorted(row[2].items()))) for row in rows}


def snapshots(data_source_id: Any) -> list[Any]:
    with get_engine().connect() as connection:
        return connection.execute(
            select(RawBinancePositionSnapshot).where(
                RawBinancePositionSnapshot.data_source_id == data_source_id
            )
        ).all()


def coverage(data_source_id: Any) -> list[Any]:
    with get_engine().connect() as connection:
        return connection.execute(
            select(StreamCoverage).where(StreamCoverage.data_source_id == data_source_id)
        ).all()


def cursors(data_source_id: Any) -> dict[tuple[str, str], dict[str, Any]]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            select(IngestionCursor).where(IngestionCursor.data_source_id == data_source_id)
        ).all()
    return {(row.stream, row.partition): row.cursor for row in rows}


def known_symbols(data_source_id: Any) -> dict[str, Any]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            select(KnownSymbol).where(KnownSymbol.data_source_id == data_source_id)
        ).all()
    return {f"{row.market}:{row.symbol}": row.delisted_at for row in rows}


def expected_rows(history: History, now_ms: int, start: date | None = None) -> set[tuple[str, str]]:
    """(record_type, source_raw_id) of every event the API still serves at `now_ms`."""
    from shared.sources.binance.streams import STREAMS_BY_NAME, source_raw_id

    found = set()
    for event in history.visible(now_ms):
        stream = STREAMS_BY_NAME[event.stream]
        if stream.pending is not None and stream.pending(event.row_at(now_ms)):
            continue  # not final yet: fetched again until it is (streams.SETTLE_REWALK)
        limit = stream.lookback.total_seconds() * 1000 if stream.lookback else None
        if limit is not None and event.time < now_ms - limit + 60_000:
            continue
        context = {k: v for k, v in event.context.items() if k in ("type", "transactionType")}
        if event.stream == "universal_transfer":
            context = {}
        if (
            event.stream == "spot_trade"
            and event.row["symbol"] == "XYZUSDT"
            and now_ms >= history.delisted_at
        ):
            continue
        found.add((event.stream, source_raw_id(event.stream, event.row, context)))
    return found
