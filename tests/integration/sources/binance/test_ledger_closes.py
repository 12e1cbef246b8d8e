"""The property reconciliation relies on: for every account and asset, the canonical movements
between two of our snapshots add up to exactly the change between them, every day of a history."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from shared.db.models import Account, Movement, PositionSnapshot
from shared.sources.binance.etl import run_etl


def _own_snapshots(engine, data_source_id):
    """{account identity: [(as_of, {asset: quantity})]} from our own balance reads, in order."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Account.id,
                Account.type,
                Account.sub_account,
                Account.key,
                PositionSnapshot.as_of,
                PositionSnapshot.asset,
                PositionSnapshot.quantity,
            )
            .join(Account, Account.id == PositionSnapshot.account_id)
            .where(
                PositionSnapshot.data_source_id == data_source_id, PositionSnapshot.source == "own"
            )
        ).all()
    reads: dict = defaultdict(lambda: defaultdict(dict))
    for account_id, kind, sub_account, key, as_of, asset, quantity in rows:
        reads[(account_id, kind, sub_account, key)][as_of][asset] = quantity
    return {account: sorted(by_time.items()) for account, by_time in reads.items()}


def _movements(engine, account_id, after, until):
    with engine.connect() as connection:
        rows = connection.execute(
            select(Movement.asset, Movement.amount).where(
                Movement.account_id == account_id,
                Movement.occurred_at > after,
                Movement.occurred_at <= until,
            )
        ).all()
    total: dict[str, Decimal] = defaultdict(Decimal)
    for asset, amount in rows:
        total[asset] += amount
    return total


@pytest.mark.parametrize("seed", [7, 11])
def test_every_day_closes_for_every_account_and_asset(binance_account, engine, seed):
    account = binance_account(seed=seed, days=8)
    history = account.history
    for day in range(1, history.days + 1):
        # The daily run at 00:30 UTC after each day of the history.
        account.simulator.now = history.start + timedelta(days=day, minutes=30)
        account.ingest()
        report = run_etl(engine, account.settings, account.data_source_id)
        assert report.failed == 0, report.failures

    reads = _own_snapshots(engine, account.data_source_id)
    assert reads, "no snapshot was normalised"
    # Every daily run reads every account at one instant; an account absent from a read (not
    # opened yet, nothing held) held nothing then.
    instants = sorted({as_of for series in reads.values() for as_of, _ in series})
    assert len(instants) == history.days
    checked, mismatches = 0, []
    for (account_id, *identity), series in reads.items():
        held = dict(series)
        full = [(instant, held.get(instant, {})) for instant in instants]
        for (opened_at, opening), (closed_at, closing) in itertools.pairwise(full):
            moved = _movements(engine, account_id, opened_at, closed_at)
            for asset in set(opening) | set(closing) | set(moved):
                expected = opening.get(asset, Decimal(0)) + moved.get(asset, Decimal(0))
                actual = closing.get(asset, Decimal(0))
                checked += 1
                if expected != actual:
                    mismatches.append((*identity, asset, closed_at.date(), actual - expected))
    assert checked > 0
    assert mismatches == [], "\n".join(map(str, mismatches))
