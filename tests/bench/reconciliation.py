"""`python tests/bench/reconciliation.py`: reconcile 1 year x 50 assets x 6 accounts; results/s."""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COINFRS_ENV_FILE", "")
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)
os.environ.setdefault("ENCRYPTION_KEY", base64.b64encode(b"b" * 32).decode())

from sqlalchemy import text  # noqa: E402

from tests.bench.database import bench_database  # noqa: E402

ACCOUNT_TYPES = ("spot", "funding", "cross_margin", "usdm_futures", "coinm_futures", "earn")


def _seed(engine, days: int, assets: int, rng: random.Random) -> tuple[uuid.UUID, date]:
    """A data source with `days` of consistent daily reads and movements (bulk COPY)."""
    from shared.sources.common.etl import copy_rows

    owner, portfolio, entity, source = (uuid.uuid4() for _ in range(4))
    first = date(2025, 1, 1)
    with engine.begin() as connection:
        ids = {"u": owner, "e": f"{owner}@bench.test", "p": portfolio, "n": entity, "s": source}
        for statement in (
            "INSERT INTO canonical.users (id, email) VALUES (:u, :e)",
            "INSERT INTO canonical.portfolios (id, owner_id, name) VALUES (:p, :u, 'bench')",
            "INSERT INTO canonical.entities (id, owner_id, portfolio_id, name) "
            "VALUES (:n, :u, :p, 'e')",
            "INSERT INTO canonical.data_sources (id, owner_id, entity_id, type, name, status) "
            "VALUES (:s, :u, :n, 'binance', 'bench', 'active')",
        ):
            connection.execute(text(statement), ids)
        accounts = {kind: uuid.uuid4() for kind in ACCOUNT_TYPES}
        connection.execute(
            text("INSERT INTO canonical.accounts (id, data_source_id, type) VALUES (:i, :s, :t)"),
            [{"i": i, "s": source, "t": kind} for kind, i in accounts.items()],
        )
        names = [f"A{n:02d}" for n in range(assets)]
        balance = {(a, n): Decimal(rng.randint(0, 10**6)) / 100 for a in accounts.values()
                   for n in names}  # fmt: skip
        snapshots, transactions, movements = [], [], []
        for day in range(days + 1):
            as_of = datetime.combine(first + timedelta(days=day), datetime.min.time(), UTC)
            read = uuid.uuid4()
            closes = (as_of - timedelta(hours=6)).date()
            if day:
                for (account, asset), held in balance.items():
                    for leg in range(2):
                        amount = Decimal(rng.randint(-(10**5), 10**5)) / 10**4
                        tx, when = uuid.uuid4(), as_of - timedelta(hours=12 - leg)
                        transactions.append(
                            f"{tx}\t{source}\ttrade\t{when.isoformat()}\t\\N\tbench\t{tx}\t{tx}\t0"
                        )
                        movements.append(
                            f"{tx}\t{account}\t{asset}\t\\N\t{amount}\tprincipal\t{when.isoformat()}"
                        )
                        balance[(account, asset)] = held = held + amount
            for (account, asset), held in balance.items():
                snapshots.append(
                    f"{source}\t{account}\t{asset}\t{held}\t{as_of.isoformat()}\t{closes}\town\t{read}"
                )
        copy_rows(connection, "canonical.transactions",
                  "id, data_source_id, type, occurred_at, external_id, record_type, "
                  "source_raw_id, raw_record_id, sequence", transactions)  # fmt: skip
        copy_rows(connection, "canonical.movements",
                  "transaction_id, account_id, asset, provider_asset, amount, kind, occurred_at",
                  movements)  # fmt: skip
        copy_rows(connection, "canonical.position_snapshots",
                  "data_source_id, account_id, asset, quantity, as_of, closes_day, source, "
                  "raw_snapshot_id", snapshots)  # fmt: skip
    return source, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--assets", type=int, default=50)
    args = parser.parse_args(argv)

    databases = ExitStack()
    url = databases.enter_context(bench_database())
    os.environ["DATABASE_URL"] = url
    try:
        from shared.config import bootstrap
        from shared.db.engine import get_engine
        from shared.services import reconciliation

        engine = get_engine()
        started = time.perf_counter()
        source, first = _seed(engine, args.days, args.assets, random.Random(7))
        print(f"seeded {args.days} days x {args.assets} assets x {len(ACCOUNT_TYPES)} accounts "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        started = time.perf_counter()
        run = reconciliation.reconcile(
            bootstrap(), source, first, first + timedelta(days=args.days - 1)
        )
        elapsed = time.perf_counter() - started
        total = sum(run.counts.values())
        print(f"reconciled {total:,} results in {elapsed:.1f} s: {total / elapsed:,.0f} results/s "
              f"({run.counts})")  # fmt: skip
        engine.dispose()
    finally:
        databases.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
