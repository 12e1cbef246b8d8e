"""Reading the canonical ledger: a user's transactions with their movements, and positions."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, select

from shared.db.engine import unit_of_work
from shared.db.models import (
    Account,
    DataSource,
    Entity,
    Movement,
    PositionSnapshot,
    Transaction,
)
from shared.errors import ValidationFailed
from shared.http.envelope import Page
from shared.http.pagination import paginate
from shared.services.ownership import owned


@dataclass(frozen=True)
class TransactionFilter:
    data_source_id: uuid.UUID | None = None
    entity_id: uuid.UUID | None = None
    start: date | None = None
    end: date | None = None
    asset: str | None = None
    type: str | None = None


def account_of(row: Any) -> dict[str, Any]:
    return {"type": row.type, "sub_account": row.sub_account, "key": row.key}


def _owned_sources(
    db: Any, owner: uuid.UUID, data_source_id: uuid.UUID | None, entity_id: uuid.UUID | None
) -> Select[Any]:
    """The caller's data source ids matching the filters; another user's id is a 404."""
    if data_source_id is not None:
        owned(db, DataSource, owner, data_source_id, "data source")
    if entity_id is not None:
        owned(db, Entity, owner, entity_id, "entity")
    # A deleted data source's ledger is gone from every read, like the source itself.
    sources = select(DataSource.id).where(
        DataSource.owner_id == owner, DataSource.deleted_at.is_(None)
    )
    if data_source_id is not None:
        sources = sources.where(DataSource.id == data_source_id)
    if entity_id is not None:
        sources = sources.where(DataSource.entity_id == entity_id)
    return sources


def list_transactions(
    owner: uuid.UUID, filters: TransactionFilter, limit: int, cursor: str | None
) -> Page:
    """Transactions, newest first, each with its movements."""
    if filters.start and filters.end and filters.start > filters.end:
        raise ValidationFailed("start is after end")
    with unit_of_work() as db:
        sources = _owned_sources(db, owner, filters.data_source_id, filters.entity_id)
        statement = select(Transaction).where(Transaction.data_source_id.in_(sources))
        if filters.start:
            statement = statement.where(
                Transaction.occurred_at >= datetime.combine(filters.start, time(), UTC)
            )
        if filters.end:
            after_end = datetime.combine(filters.end + timedelta(days=1), time(), UTC)
            statement = statement.where(Transaction.occurred_at < after_end)
        if filters.type:
            statement = statement.where(Transaction.type == filters.type)
        if filters.asset:
            statement = statement.where(
                select(Movement.id)
                .where(Movement.transaction_id == Transaction.id, Movement.asset == filters.asset)
                .exists()
            )
        page = paginate(
            db,
            statement,
            [Transaction.occurred_at, Transaction.id],
            limit,
            cursor,
            descending=True,
        )
        ids = [row.id for row in page.items]
        legs: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        rows = db.execute(
            select(Movement, Account)
            .join(Account, Account.id == Movement.account_id)
            .where(Movement.transaction_id.in_(ids))
            .order_by(Movement.transaction_id, Movement.kind, Movement.asset, Movement.id)
        ).all()
        for movement, account in rows:
            legs[movement.transaction_id].append(
                {
                    "account": account_of(account),
                    "asset": movement.asset,
                    "provider_asset": movement.provider_asset,
                    "amount": movement.amount,
                    "kind": movement.kind.value,
                }
            )
        items = [
            {
                "id": row.id,
                "data_source_id": row.data_source_id,
                "type": row.type.value,
                "occurred_at": row.occurred_at,
                "external_id": row.external_id,
                "source_raw_id": row.source_raw_id,
                "movements": legs[row.id],
            }
            for row in page.items
        ]
        return Page(items, page.next_cursor)


def positions(
    owner: uuid.UUID, data_source_id: uuid.UUID | None, day: date | None
) -> list[dict[str, Any]]:
    """Per account and asset, the snapshot that closes `day` (our own read, else Binance's),
    or the latest one when no day is given (CONTRACT.md, Positions and days)."""
    with unit_of_work() as db:
        sources = _owned_sources(db, owner, data_source_id, None)
        # One raw read per account closes the day: the latest, our own reads before the
        # provider's end-of-day snapshots.
        reads = select(
            PositionSnapshot.account_id,
            PositionSnapshot.raw_snapshot_id,
            PositionSnapshot.source,
            PositionSnapshot.as_of,
        ).where(PositionSnapshot.data_source_id.in_(sources))
        if day is not None:
            reads = reads.where(PositionSnapshot.closes_day == day)
        reads = reads.group_by(
            PositionSnapshot.account_id,
            PositionSnapshot.raw_snapshot_id,
            PositionSnapshot.source,
            PositionSnapshot.as_of,
        ).subquery()
        chosen = select(
            reads.c.account_id,
            reads.c.raw_snapshot_id,
            func.row_number()
            .over(
                partition_by=reads.c.account_id,
                order_by=[(reads.c.source == "own").desc(), reads.c.as_of.desc()],
            )
            .label("rank"),
        ).subquery()
        rows = db.execute(
            select(PositionSnapshot, Account)
            .join(
                chosen,
                and_(
                    chosen.c.account_id == PositionSnapshot.account_id,
                    chosen.c.raw_snapshot_id == PositionSnapshot.raw_snapshot_id,
                    chosen.c.rank == 1,
                ),
            )
            .join(Account, Account.id == PositionSnapshot.account_id)
            .order_by(Account.type, Account.sub_account, Account.key, PositionSnapshot.asset)
        ).all()
        return [
            {
                "account": account_of(account),
                "asset": snapshot.asset,
                "quantity": Decimal(snapshot.quantity),
                "as_of": snapshot.as_of,
                "source": snapshot.source,
                "data_source_id": snapshot.data_source_id,
            }
            for snapshot, account in rows
        ]
