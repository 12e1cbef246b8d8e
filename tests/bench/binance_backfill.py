"""`python tests/bench/binance_backfill.py [--days N]`: a full backfill against the simulator."""

from __future__ import annotations

import argparse
import base64
import math
import os
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COINFRS_ENV_FILE", "")
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)
os.environ.setdefault("ENCRYPTION_KEY", base64.b64encode(b"b" * 32).decode())

from sqlalchemy import create_engine, select, text  # noqa: E402

from tests.bench.database import bench_database  # noqa: E402

GOAL_RATIO = 1.2


class FakeTime:
    """Pacing waits are counted, not slept: the figures are calls and weight, not seconds."""

    def __init__(self) -> None:
        self.now = time.time()
        self.waited = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waited += seconds
        self.now += seconds


def _data_source(engine) -> uuid.UUID:
    ids = {name: uuid.uuid4() for name in ("user", "portfolio", "entity", "source")}
    statements = (
        "INSERT INTO canonical.users (id, email) VALUES (:user, 'bench@coinfrs.test')",
        "INSERT INTO canonical.portfolios (id, owner_id, name) VALUES (:portfolio, :user, 'b')",
        "INSERT INTO canonical.entities (id, owner_id, portfolio_id, name) "
        "VALUES (:entity, :user, :portfolio, 'b')",
        "INSERT INTO canonical.data_sources (id, owner_id, entity_id, type, name, status) "
        "VALUES (:source, :user, :entity, 'binance', 'bench', 'active')",
    )
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), ids)
    return ids["source"]


def _minimum(engine, data_source_id, report, history) -> tuple[int, int]:
    """The fewest calls (and their weight) the provider's windows and page sizes allow for the
    partitions this run asked: one call per window, plus one per further full page of rows."""
    from shared.db.models.ingestion import IngestionCursor
    from shared.sources.binance.streams import STREAMS_BY_NAME

    with engine.connect() as connection:
        partitions = connection.execute(
            select(IngestionCursor.stream, IngestionCursor.partition).where(
                IngestionCursor.data_source_id == data_source_id
            )
        ).all()
    start_ms = int(report.start.timestamp() * 1000)
    end_ms = int(report.end.timestamp() * 1000)
    now_ms = int(report.now.timestamp() * 1000)
    counts: dict[str, int] = {}
    for event in history.visible(now_ms):
        counts[event.stream] = counts.get(event.stream, 0) + 1
    calls = weight = 0
    for stream_name, _partition in partitions:
        stream = STREAMS_BY_NAME[stream_name]
        begin = start_ms
        if stream.lookback is not None:
            begin = max(begin, now_ms - int(stream.lookback.total_seconds() * 1000))
        if stream.window is None:
            n = 1
        else:
            n = math.ceil((end_ms - begin + 1) / (stream.window.total_seconds() * 1000))
        calls += n
        weight += n * stream.weight
    for stream_name, rows in counts.items():
        stream = STREAMS_BY_NAME[stream_name]
        extra = max(0, math.ceil(rows / stream.page_size) - 1)
        calls += extra
        weight += extra * stream.weight
    # Balances, snapshots, exchangeInfo and the symbols that answered -1121: fixed per run.
    fixed_calls = 6 + 2 + 1 + len(history.sub_accounts) + 3 + 1 + len(report.delisted_symbols)
    fixed_weight = 20 + 1 + 10 + 10 + 5 + 1 + 300 + 1 + 60 * len(history.sub_accounts)
    fixed_weight += 3 * 2400 + 20 + 20 * len(report.delisted_symbols)
    return calls + fixed_calls, weight + fixed_weight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", default="bench")
    args = parser.parse_args(argv)

    from infra.simulators.binance import BinanceSimulator, serve
    from infra.simulators.binance_history import History
    from shared.config import load_settings
    from shared.sources.binance.credentials import HmacCredentials
    from shared.sources.binance.ingestion import ingest

    databases = ExitStack()
    url = databases.enter_context(bench_database())
    engine = create_engine(url)
    started = time.perf_counter()
    history = History(args.seed, days=args.days)
    print(
        f"history: {args.days} days, {len(history.events):,} events "
        f"({time.perf_counter() - started:.1f} s to generate)"
    )
    simulator = BinanceSimulator(history=history)
    clock = FakeTime()
    simulator.feeds.clock = clock.time
    api_key, secret = simulator.add_hmac_key("read_only")
    try:
        data_source_id = _data_source(engine)
        with serve(simulator) as running:
            settings = load_settings(
                binance_spot_url=running.url,
                binance_usdm_url=running.url,
                binance_coinm_url=running.url,
            )
            started = time.perf_counter()
            report = ingest(
                settings,
                engine,
                data_source_id,
                HmacCredentials(api_key=api_key, api_secret=secret),
                start=history.start.date(),
                sleep=clock.sleep,
                clock=clock.time,
            )
            elapsed = time.perf_counter() - started
        minimum_calls, minimum_weight = _minimum(engine, data_source_id, report, history)
        print(
            f"records inserted: {report.records_inserted:,} in {report.pages:,} pages "
            f"({elapsed:.1f} s wall)"
        )
        print(
            f"api calls: {report.api_calls:,} (minimum the windows allow: {minimum_calls:,}; "
            f"ratio {report.api_calls / minimum_calls:.2f}, goal <= {GOAL_RATIO})"
        )
        print(
            f"weight used: {report.weight_used:,} (minimum: {minimum_weight:,}; "
            f"ratio {report.weight_used / minimum_weight:.2f}, goal <= {GOAL_RATIO})"
        )
        print(f"weight by meter: {report.weight_by_meter}")
        print(
            f"429s: {simulator.feeds.stats['429']} (goal 0); retries: {report.retries}; "
            f"pacing waits: {clock.waited:.0f} s of provider time"
        )
        print(f"symbols with fills: {sorted(report.symbols)}; delisted: {report.delisted_symbols}")
        print(f"coverage gaps: {[(g['stream'], g['partition']) for g in report.coverage_gaps]}")
    finally:
        engine.dispose()
        databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
