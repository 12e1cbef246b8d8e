"""The daily completeness check as a pure function: opening + movements = closing, per account
and asset, exactly (DESIGN.md §4). No database, no clock: the service feeds it and stores it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


class Status(enum.StrEnum):
    MATCHED = "matched"
    MISMATCH = "mismatch"
    MISSING_DATA = "missing_data"


@dataclass(frozen=True)
class Result:
    """One (account, asset) of one day. `account` is whatever identity the caller uses."""

    day: date
    account: Any
    asset: str
    opening: Decimal | None
    movements: Decimal
    expected: Decimal | None
    actual: Decimal | None
    difference: Decimal | None
    status: Status
    tolerance: Decimal | None = None
    reason: str | None = None


Key = tuple[Any, str]


def reconcile_day(
    day: date,
    opening: Mapping[Key, Decimal] | None,
    closing: Mapping[Key, Decimal] | None,
    movements: Mapping[Key, Decimal],
    *,
    uncovered: Mapping[Any, tuple[str, ...]] | None = None,
    tolerances: Mapping[str, Decimal] | None = None,
) -> list[Result]:
    """Check `day`: for every (account, asset) on either side or moved, opening + movements
    must equal closing. `opening`/`closing` None: no snapshot closes that day (every key is
    missing_data). An (account, asset) absent from a snapshot that exists held zero.
    `uncovered[account]` names streams the provider could not return for the day: that account's
    results are missing_data naming them, never a silent match. `tolerances[asset]` widens
    "matched" to |difference| <= tolerance, and is shown in the result."""
    uncovered = uncovered or {}
    tolerances = tolerances or {}
    keys = set(movements) | set(opening or {}) | set(closing or {})
    results = []
    for account, asset in sorted(keys, key=lambda key: (repr(key[0]), key[1])):
        moved = movements.get((account, asset), ZERO)
        tolerance = tolerances.get(asset)
        if opening is None or closing is None:
            which = "the day before" if opening is None else "the day"
            results.append(
                Result(
                    day, account, asset,
                    None if opening is None else opening.get((account, asset), ZERO),
                    moved, None,
                    None if closing is None else closing.get((account, asset), ZERO),
                    None, Status.MISSING_DATA, tolerance,
                    f"no balance snapshot closes {which}",
                )
            )  # fmt: skip
            continue
        start = opening.get((account, asset), ZERO)
        expected = start + moved
        actual = closing.get((account, asset), ZERO)
        difference = actual - expected
        if uncovered.get(account):
            status = Status.MISSING_DATA
            reason = "history not available from the provider: " + ", ".join(uncovered[account])
        elif difference == 0 or (tolerance is not None and abs(difference) <= tolerance):
            status, reason = Status.MATCHED, None
        else:
            status, reason = Status.MISMATCH, None
        results.append(
            Result(day, account, asset, start, moved, expected, actual, difference, status,
                   tolerance, reason)
        )  # fmt: skip
    return results
