"""`python tests/bench/binance_etl.py [--records N]`: Binance ETL records/s (goal 50,000)."""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import random
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

from sqlalchemy import create_engine, text  # noqa: E402

from tests.bench.database import bench_database  # noqa: E402

GOAL = 50_000
T0 = 1_700_000_000_000
ASSETS = ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE")


def _row(kind: str, n: int, rng: random.Random) -> tuple[str, str, dict]:
    """One realistic provider row of `kind` (the mix below is roughly a trading desk's)."""
    when = T0 + n * 1000
    amount = f"{rng.randint(1, 10**8) / 10**8:.8f}"
    asset = ASSETS[n % len(ASSETS)]
    if kind == "spot_trade":
        price = f"{rng.randint(1, 10**6) / 100:.2f}"
        return kind, f"{asset}USDT:{n}", {
            "symbol": f"{asset}USDT", "id": n, "orderId": n, "orderListId": -1, "price": price,
            "qty": amount, "quoteQty": f"{rng.randint(1, 10**8) / 10**4:.4f}",
            "commission": "0.00001000", "commissionAsset": "BNB", "time": when,
            "isBuyer": n % 2 == 0, "isMaker": False, "isBestMatch": True}  # fmt: skip
    if kind == "usdm_income":
        income = ("REALIZED_PNL", "FUNDING_FEE", "COMMISSION")[n % 3]
        return kind, f"{income}:{n}", {
            "symbol": "BTCUSDT", "incomeType": income, "income": f"-{amount}", "asset": "USDT",
            "info": "", "time": when, "tranId": n, "tradeId": str(n)}  # fmt: skip
    if kind == "margin_trade":
        return kind, f"{asset}USDT:FALSE:{n}", {
            "commission": "0.001", "commissionAsset": "USDT", "id": n, "isBestMatch": True,
            "isBuyer": True, "isMaker": False, "orderId": n, "price": "123.45", "qty": amount,
            "symbol": f"{asset}USDT", "isIsolated": n % 4 == 0, "time": when}  # fmt: skip
    if kind == "deposit":
        return kind, str(n), {
            "id": str(n), "amount": amount, "coin": asset, "network": asset, "status": 1,
            "address": "0xabc", "txId": f"0x{n:x}", "insertTime": when, "completeTime": when,
            "transferType": 0, "walletType": n % 2}  # fmt: skip
    if kind == "withdrawal":
        return kind, str(n), {
            "id": str(n), "amount": amount, "transactionFee": "0.0005", "coin": asset,
            "status": 6, "address": "0xabc", "txId": f"0x{n:x}",
            "applyTime": "2024-03-05 06:00:00", "walletType": 0}  # fmt: skip
    if kind == "universal_transfer":
        return kind, f"MAIN_FUNDING:{n}", {
            "asset": "USDT", "amount": amount, "type": "MAIN_FUNDING", "status": "CONFIRMED",
            "tranId": n, "timestamp": when}  # fmt: skip
    return kind, f"USDT001:REALTIME:{when}:USDT", {
        "asset": "USDT", "rewards": amount, "projectId": "USDT001", "type": "REALTIME",
        "time": when}  # fmt: skip


MIX = (
    ["spot_trade"] * 50
    + ["usdm_income"] * 20
    + ["margin_trade"] * 10
    + ["deposit"] * 5
    + ["withdrawal"] * 5
    + ["universal_transfer"] * 5
    + ["earn_flexible_reward"] * 5
)


def _generate(engine, data_source_id: uuid.UUID, records: int) -> None:
    from shared.sources.common.etl import copy_rows, copy_text

    rng = random.Random(7)
    chunk = 50_000
    for start in range(0, records, chunk):
        lines = []
        for n in range(start, min(start + chunk, records)):
            kind, raw_id, payload = _row(MIX[n % len(MIX)], n, rng)
            lines.append(
                f"{data_source_id}\t{kind}\t{copy_text(raw_id)}\t"
                f"{copy_text(json.dumps(payload, separators=(',', ':')))}"
            )
        with engine.begin() as connection:
            copy_rows(
                connection,
                "staging.raw_binance_data",
                "data_source_id, record_type, source_raw_id, raw_payload",
                lines,
            )


def _data_source(engine) -> uuid.UUID:
    ids = {name: uuid.uuid4() for name in ("user", "portfolio", "entity", "source")}
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO canonical.users (id, email) VALUES (:user, 'bench@coinfrs.test')"),
            ids,
        )
        connection.execute(
            text(
                "INSERT INTO canonical.portfolios (id, owner_id, name) "
                "VALUES (:portfolio, :user, 'bench')"
            ),
            ids,
        )
        connection.execute(
            text(
                "INSERT INTO canonical.entities (id, owner_id, portfolio_id, name) "
                "VALUES (:entity, :user, :portfolio, 'bench')"
            ),
            ids,
        )
        connection.execute(
            text(
                "INSERT INTO canonical.data_sources (id, owner_id, entity_id, type, name, status) "
                "VALUES (:source, :user, :entity, 'binance', 'bench', 'active')"
            ),
            ids,
        )
    return ids["source"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile")
    args = parser.parse_args(argv)

    from shared.config import load_settings
    from shared.sources.binance.etl import run_etl

    databases = ExitStack()
    url = databases.enter_context(bench_database())
    engine = create_engine(url)
    try:
        data_source_id = _data_source(engine)
        started = time.perf_counter()
        _generate(engine, data_source_id, args.records)
        loaded = time.perf_counter() - started
        print(f"staged {args.records:,} raw records in {loaded:.1f} s")

        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        report = run_etl(engine, load_settings(), data_source_id, batch_size=args.batch_size)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        rate = args.records / elapsed
        print(
            f"etl: {elapsed:.1f} s, {rate:,.0f} records/s (goal {GOAL:,}); processed "
            f"{report.processed:,} skipped {report.skipped:,} failed {report.failed:,}; "
            f"{report.transactions:,} transactions, {report.movements:,} movements"
        )
        started = time.perf_counter()
        again = run_etl(engine, load_settings(), data_source_id, batch_size=args.batch_size)
        print(
            f"second run: {time.perf_counter() - started:.2f} s, "
            f"{again.transactions} new transactions (idempotent)"
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    finally:
        engine.dispose()
        databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
