"""Binance staging → canonical: movements from raw rows, positions from snapshots."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from shared.config import Settings
from shared.sources.binance.mappers import MAPPERS, is_earn_receipt
from shared.sources.common.etl import (
    AccountRef,
    EtlReport,
    MappingError,
    PositionDraft,
    normalise_snapshots,
    process_pending,
    to_decimal,
)

logger = logging.getLogger(__name__)

RAW_TABLE = "staging.raw_binance_data"
SNAPSHOT_TABLE = "staging.raw_binance_position_snapshot"


def _sum(row: dict[str, Any], *names: str) -> Decimal:
    total = Decimal(0)
    for name in names:
        value = row.get(name)
        if value is not None and value != "":
            total += to_decimal(value, name)
    return total


def _first(row: dict[str, Any], *names: str) -> Decimal:
    for name in names:
        if row.get(name) not in (None, ""):
            return to_decimal(row[name], name)
    raise MappingError(f"balance row has none of {names}")


def _net_asset(row: dict[str, Any]) -> Decimal:
    # netAsset = free + locked - borrowed - interest: the quantity margin movements are booked in.
    if row.get("netAsset") not in (None, ""):
        return to_decimal(row["netAsset"], "netAsset")
    return _sum(row, "free", "locked") - _sum(row, "borrowed", "interest")


def _rows(balances: Any) -> list[dict[str, Any]]:
    if not isinstance(balances, list) or not all(isinstance(row, dict) for row in balances):
        raise MappingError("balances is not a list of objects")
    return balances


def _asset(row: dict[str, Any]) -> str:
    asset = row.get("asset")
    if not isinstance(asset, str) or not asset:
        raise MappingError(f"balance row without asset: {row!r}")
    return asset


def _spot(account: AccountRef, balances: Any) -> list[PositionDraft]:
    # LD<asset> receipts are the Simple Earn position, counted by the earn snapshot.
    return [
        PositionDraft(account, _asset(row), _sum(row, "free", "locked"))
        for row in _rows(balances)
        if not is_earn_receipt(_asset(row))
    ]


def _funding(account: AccountRef, balances: Any) -> list[PositionDraft]:
    return [
        PositionDraft(account, _asset(row), _sum(row, "free", "locked", "freeze", "withdrawing"))
        for row in _rows(balances)
    ]


def _cross_margin(account: AccountRef, balances: Any) -> list[PositionDraft]:
    return [PositionDraft(account, _asset(row), _net_asset(row)) for row in _rows(balances)]


def _isolated_margin(account: AccountRef, balances: Any) -> list[PositionDraft]:
    positions = []
    for row in _rows(balances):
        symbol = row.get("symbol")
        if not symbol:
            raise MappingError("isolated-margin balance row without symbol")
        pair = AccountRef("isolated_margin", account.sub_account, symbol)
        for side in ("baseAsset", "quoteAsset"):
            leg = row.get(side)
            if not isinstance(leg, dict):
                raise MappingError(f"isolated-margin {symbol} has no {side}")
            positions.append(PositionDraft(pair, _asset(leg), _net_asset(leg)))
    return positions


def _futures(account: AccountRef, balances: Any) -> list[PositionDraft]:
    # The wallet balance: what income rows move (unrealised PnL is not in it).
    return [
        PositionDraft(account, _asset(row), _first(row, "balance", "walletBalance"))
        for row in _rows(balances)
    ]


def _earn(account: AccountRef, balances: Any) -> list[PositionDraft]:
    # Flexible rows carry totalAmount, locked rows amount; one asset may hold both.
    totals: dict[str, Decimal] = {}
    for row in _rows(balances):
        asset = _asset(row)
        totals[asset] = totals.get(asset, Decimal(0)) + _first(row, "totalAmount", "amount")
    return [PositionDraft(account, asset, quantity) for asset, quantity in totals.items()]


# staging account_type → (canonical account type, quantity reader)
SNAPSHOT_READERS = {
    "spot": ("spot", _spot),
    "funding": ("funding", _funding),
    "cross_margin": ("cross_margin", _cross_margin),
    "isolated_margin": ("isolated_margin", _isolated_margin),
    "usdm_futures": ("usdm_futures", _futures),
    "coinm_futures": ("coinm_futures", _futures),
    "earn": ("earn", _earn),
    "account_snapshot_spot": ("spot", _spot),
    "account_snapshot_margin": ("cross_margin", _cross_margin),
    # Binance's FUTURES snapshot is USD-M only; walletBalance is its wallet balance.
    "account_snapshot_futures": ("usdm_futures", _futures),
}


def read_snapshot(account_type: str, sub_account: str | None, balances: Any) -> list[PositionDraft]:
    """The positions one staging snapshot states (pure)."""
    try:
        canonical, reader = SNAPSHOT_READERS[account_type]
    except KeyError:
        raise MappingError(f"unknown snapshot account type {account_type!r}") from None
    return reader(AccountRef(canonical, sub_account or None), balances)


def _snapshot_source(account_type: str) -> str:
    return "account_snapshot" if account_type.startswith("account_snapshot_") else "own"


def run_etl(
    engine: Engine, settings: Settings, data_source_id: uuid.UUID, *, batch_size: int = 10_000
) -> EtlReport:
    """Map every pending Binance raw row and every new snapshot of `data_source_id`.

    Idempotent and safe to run concurrently: rows are claimed FOR UPDATE SKIP LOCKED, canonical
    inserts are ON CONFLICT DO NOTHING, and only pending rows are read."""
    report = EtlReport()
    process_pending(
        engine,
        table=RAW_TABLE,
        data_source_id=data_source_id,
        mappers=MAPPERS,
        batch_size=batch_size,
        report=report,
    )
    normalise_snapshots(
        engine,
        table=SNAPSHOT_TABLE,
        data_source_id=data_source_id,
        reader=read_snapshot,
        source_of=_snapshot_source,
        grace=settings.snapshot_grace,
        report=report,
    )
    logger.info(
        "binance etl finished",
        extra={
            "data_source_id": str(data_source_id),
            "processed": report.processed,
            "skipped": report.skipped,
            "failed": report.failed,
            "transactions": report.transactions,
            "movements": report.movements,
            "snapshots": report.snapshots,
        },
    )
    return report
