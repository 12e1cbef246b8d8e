"""Opaque keyset cursors and the query helper every paginated list uses."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from shared.errors import ValidationFailed
from shared.http.envelope import Page

_DECODERS = {
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    uuid.UUID: uuid.UUID,
    Decimal: Decimal,
    int: int,
    str: str,
}


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, (date, datetime)) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> tuple[Any, ...]:
    """The key values a cursor holds, typed as `kinds`; a tampered cursor is a VALIDATION_ERROR."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError
        return tuple(_DECODERS[kind](value) for kind, value in zip(kinds, values, strict=True))
    except (ValueError, TypeError, KeyError, binascii.Error, ArithmeticError):
        raise ValidationFailed(
            "cursor is not valid", {"cursor": "not a cursor of this list"}
        ) from None


def paginate(
    session: Session,
    statement: Select[Any],
    keys: Sequence[Any],
    limit: int,
    cursor: str | None,
    *,
    descending: bool = False,
) -> Page:
    """One page of `statement` ordered by `keys` (unique together), after `cursor`.

    Keyset paging: stable while rows are added, and as fast on page 1,000 as on page 1.
    """
    kinds = [column.type.python_type for column in keys]
    if cursor:
        after = decode_cursor(cursor, kinds)
        position = tuple_(*keys)
        statement = statement.where(position < after if descending else position > after)
    order = [key.desc() if descending else key.asc() for key in keys]
    rows = session.execute(statement.order_by(*order).limit(limit + 1)).all()
    items = [row[0] if len(row) == 1 else row for row in rows[:limit]]
    if len(rows) <= limit:
        return Page(items, None)
    last = rows[limit - 1]
    if hasattr(last[0], "__table__"):  # ORM entities: the first one carries the keys
        values = [getattr(last[0], key.key) for key in keys]
    else:
        values = [last._mapping[key] for key in keys]
    return Page(items, encode_cursor(values))
