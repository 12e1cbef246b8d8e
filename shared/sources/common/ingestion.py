"""Provider-neutral ingestion: window walking, paging, and page + cursor in one transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models.ingestion import IngestionCursor, StreamCoverage

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]


def session_factory(target: Engine | SessionFactory) -> SessionFactory:
    """Accept an engine or a session factory."""
    if isinstance(target, Engine):
        return sessionmaker(target, expire_on_commit=False)
    return target


def to_datetime(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


@dataclass(frozen=True)
class Page:
    """One provider page: its rows, where the next page of the same window starts (None: the
    window is exhausted), and whether the window held more than the provider would return
    without a page parameter (then the walker halves the window)."""

    rows: list[dict[str, Any]]
    next: dict[str, Any] | None = None
    overflow: bool = False


# (window start ms, window end ms, position within the window) -> Page
Fetch = Callable[[int, int, dict[str, Any]], Page]
# (rows, cursor to persist with them) -> None; one transaction
Save = Callable[[list[dict[str, Any]], dict[str, Any]], None]


def walk_windows(
    *,
    start_ms: int,
    end_ms: int,
    window_ms: int | None,
    cursor: dict[str, Any],
    fetch: Fetch,
    save: Save,
    min_window_ms: int = 1000,
) -> None:
    """Walk [start, end] in windows no wider than `window_ms`, every page of every window.

    The cursor saved with each page says where to resume: the window start, the window end when
    it was narrowed, the position in the window. A cursor from an earlier run resumes where it
    stopped, unless it began later than `start_ms` (then history before it is walked again; the
    inserts are idempotent)."""
    if cursor.get("from", start_ms) > start_ms:
        cursor = {}
    begin = cursor.get("from", start_ms)
    next_start = max(cursor.get("next_start", start_ms), start_ms)
    window_end = cursor.get("window_end")
    position = cursor.get("position") or {}
    while next_start <= end_ms:
        width = window_ms if window_ms is not None else end_ms - next_start + 1
        w_end = window_end if window_end is not None else min(next_start + width - 1, end_ms)
        page = fetch(next_start, w_end, position)
        if page.overflow and w_end - next_start > min_window_ms:
            # Keep what came (the inserts dedupe), then take the first half of the window.
            window_end, position = next_start + (w_end - next_start) // 2, {}
        elif page.next is not None:
            window_end, position = w_end, page.next
        else:
            if page.overflow:
                log.warning(
                    "a window the provider cannot split further is full",
                    extra={"window_start": next_start, "window_end": w_end},
                )
            next_start, window_end, position = w_end + 1, None, {}
        save(
            page.rows,
            {
                "from": begin,
                "next_start": next_start,
                "window_end": window_end,
                "position": position,
            },
        )


def walk_ids(
    *,
    cursor: dict[str, Any],
    fetch: Callable[[int], list[dict[str, Any]]],
    page_size: int,
    row_id: Callable[[dict[str, Any]], int],
    row_time: Callable[[dict[str, Any]], int],
    end_ms: int,
    save: Save,
) -> None:
    """Page by id (`fromId` = last id + 1) until a short page; never past `end_ms`."""
    from_id = cursor.get("from_id", 0)
    while True:
        rows = fetch(from_id)
        kept = [row for row in rows if row_time(row) <= end_ms]
        if kept:
            from_id = max(row_id(row) for row in kept) + 1
        save(kept, {"from_id": from_id})
        if len(rows) < page_size or len(kept) < len(rows):
            return


@dataclass
class Store:
    """Staging writes of one data source: rows and the cursor they advance, together."""

    factory: SessionFactory
    data_source_id: uuid.UUID
    table: Table
    inserted: int = 0
    pages: int = 0
    per_stream: dict[str, dict[str, int]] = field(default_factory=dict)

    def cursor(self, stream: str, partition: str) -> dict[str, Any]:
        with self.factory() as session:
            found = session.scalar(
                select(IngestionCursor.cursor).where(
                    IngestionCursor.data_source_id == self.data_source_id,
                    IngestionCursor.stream == stream,
                    IngestionCursor.partition == partition,
                )
            )
        return dict(found or {})

    def save_page(
        self,
        stream: str,
        partition: str,
        records: Iterable[tuple[str, str, dict[str, Any]]],
        cursor: dict[str, Any],
    ) -> int:
        """Insert (record_type, source_raw_id, payload) rows and the cursor in one transaction."""
        values = [
            {
                "data_source_id": self.data_source_id,
                "record_type": record_type,
                "source_raw_id": raw_id,
                "raw_payload": payload,
            }
            for record_type, raw_id, payload in records
        ]
        with self.factory() as session, session.begin():
            count = 0
            if values:
                statement = (
                    insert(self.table)
                    .values(values)
                    .on_conflict_do_nothing(
                        index_elements=["data_source_id", "record_type", "source_raw_id"]
                    )
                    .returning(self.table.c.source_raw_id)
                )
                count = len(session.execute(statement).all())
            session.execute(
                insert(IngestionCursor)
                .values(
                    data_source_id=self.data_source_id,
                    stream=stream,
                    partition=partition,
                    cursor=cursor,
                )
                .on_conflict_do_update(
                    index_elements=["data_source_id", "stream", "partition"],
                    set_={"cursor": cursor},
                )
            )
        self.inserted += count
        self.pages += 1
        totals = self.per_stream.setdefault(stream, {"pages": 0, "records_inserted": 0})
        totals["pages"] += 1
        totals["records_inserted"] += count
        return count

    def coverage(
        self,
        stream: str,
        partition: str,
        *,
        fetched_from: datetime | None,
        fetched_to: datetime | None,
        unavailable_before: datetime | None,
        reason: str | None,
    ) -> None:
        """Record what history was fetched, widening what earlier runs recorded."""
        with self.factory() as session, session.begin():
            existing = session.scalar(
                select(StreamCoverage).where(
                    StreamCoverage.data_source_id == self.data_source_id,
                    StreamCoverage.stream == stream,
                    StreamCoverage.partition == partition,
                )
            )
            if existing is None:
                existing = StreamCoverage(
                    data_source_id=self.data_source_id, stream=stream, partition=partition
                )
                session.add(existing)
            if fetched_from is not None and (
                existing.fetched_from is None or fetched_from < existing.fetched_from
            ):
                existing.fetched_from = fetched_from
            if fetched_to is not None and (
                existing.fetched_to is None or fetched_to > existing.fetched_to
            ):
                existing.fetched_to = fetched_to
            if unavailable_before is not None:
                existing.unavailable_before = unavailable_before
                existing.reason = reason
            elif reason is not None and existing.reason is None:
                existing.reason = reason
