"""Daily completeness reconciliation: feed the pure check from the ledger, store runs and results,
raise each unclosed (data source, day) once: an alert row, a Pub/Sub message, an email."""

from __future__ import annotations

import html
import importlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.config import Runtime
from shared.db.engine import unit_of_work
from shared.db.models import (
    Account,
    Alert,
    DataSource,
    PositionSnapshot,
    ReconciliationResult,
    ReconciliationRun,
    StreamCoverage,
    User,
)
from shared.errors import ValidationFailed
from shared.http.envelope import Page
from shared.http.pagination import paginate
from shared.messaging.messages import (
    CanonicalUpdated,
    ReconciliationAlertRaised,
    ReconciliationRequested,
)
from shared.services import jobs
from shared.services.ownership import owned
from shared.sources.common.etl import copy_rows, copy_text
from shared.sources.common.reconciliation import Result, Status, reconcile_day

log = logging.getLogger(__name__)
MAX_DAYS = 366
RECONCILE = "reconcile"


@dataclass(frozen=True)
class Read:
    """One balance read that closes a day: when, and what each (account, asset) held."""

    as_of: datetime
    balances: dict[tuple[uuid.UUID, str], Decimal]


def _closing_reads(db: Session, data_source_id: uuid.UUID, first: date, last: date) -> dict:
    """For each day in [first, last], the read that closes it: our latest own read standing for
    that day (CONTRACT.md, Positions and days)."""
    latest = (
        select(PositionSnapshot.closes_day, func.max(PositionSnapshot.as_of).label("as_of"))
        .where(
            PositionSnapshot.data_source_id == data_source_id,
            PositionSnapshot.source == "own",
            PositionSnapshot.closes_day.between(first, last),
        )
        .group_by(PositionSnapshot.closes_day)
        .subquery()
    )
    rows = db.execute(
        select(
            latest.c.closes_day,
            PositionSnapshot.as_of,
            PositionSnapshot.account_id,
            PositionSnapshot.asset,
            PositionSnapshot.quantity,
        ).join(
            latest,
            (PositionSnapshot.as_of == latest.c.as_of)
            & (PositionSnapshot.data_source_id == data_source_id)
            & (PositionSnapshot.source == "own"),
        )
    ).all()
    reads: dict[date, Read] = {}
    for day, as_of, account_id, asset, quantity in rows:
        read = reads.setdefault(day, Read(as_of, {}))
        read.balances[(account_id, asset)] = Decimal(quantity)
    return reads


def _movements(
    db: Session, data_source_id: uuid.UUID, windows: dict[date, tuple[datetime, datetime]]
) -> dict[date, dict[tuple[uuid.UUID, str], Decimal]]:
    """Per day, the sum of movements per (account, asset) after its opening read up to and
    including its closing read: one query for every day."""
    if not windows:
        return {}
    days = sorted(windows)
    rows = db.execute(
        text(
            "SELECT w.day, m.account_id, m.asset, sum(m.amount) "
            "FROM unnest(CAST(:days AS date[]), CAST(:after AS timestamptz[]), "
            "            CAST(:until AS timestamptz[])) AS w(day, after, until) "
            "JOIN canonical.movements m ON m.occurred_at > w.after AND m.occurred_at <= w.until "
            "JOIN canonical.accounts a ON a.id = m.account_id AND a.data_source_id = :ds "
            "GROUP BY w.day, m.account_id, m.asset"
        ),
        {
            "days": days,
            "after": [windows[day][0] for day in days],
            "until": [windows[day][1] for day in days],
            "ds": data_source_id,
        },
    ).all()
    moved: dict[date, dict[tuple[uuid.UUID, str], Decimal]] = defaultdict(dict)
    for day, account, asset, total in rows:
        moved[day][(account, asset)] = Decimal(total)
    return moved


def _coverage_gaps(db: Session, source: DataSource) -> Any:
    """A function of a day: the accounts a stream the provider cannot return for that day moves,
    with those streams (coverage and accounts read once)."""
    gaps = db.execute(
        select(
            StreamCoverage.stream, StreamCoverage.unavailable_before, StreamCoverage.fetched_from
        ).where(
            StreamCoverage.data_source_id == source.id,
            StreamCoverage.unavailable_before.is_not(None),
        )
    ).all()
    accounts = db.execute(
        select(Account.id, Account.type).where(Account.data_source_id == source.id)
    ).all()
    affected = importlib.import_module(
        f"shared.sources.{source.type}.reconciliation"
    ).STREAM_ACCOUNT_TYPES

    def uncovered(day: date) -> dict[uuid.UUID, tuple[str, ...]]:
        day_start = datetime.combine(day, time(), UTC)
        # Fetched from before the day, a stream did cover it: a delisted pair's row says
        # "nothing more is reachable", not "this day was never fetched".
        streams = sorted(
            {
                stream
                for stream, unavailable, fetched_from in gaps
                if unavailable > day_start and (fetched_from is None or fetched_from > day_start)
            }
        )
        found: dict[uuid.UUID, list[str]] = defaultdict(list)
        for stream in streams:
            for account_id, kind in accounts:
                if kind in affected.get(stream, ()):
                    found[account_id].append(stream)
        return {account: tuple(names) for account, names in found.items()}

    return uncovered


def _days(start: date, end: date) -> list[date]:
    if start > end:
        raise ValidationFailed("start is after end")
    if (end - start).days >= MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days per reconciliation")
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def reconcile(
    runtime: Runtime,
    data_source_id: uuid.UUID,
    start: date,
    end: date,
    job_id: uuid.UUID | None = None,
) -> ReconciliationRun:
    """Check every day in [start, end]; the day's earlier results stop being current."""
    days = _days(start, end)
    tolerances = runtime.settings.reconciliation_tolerances
    with unit_of_work() as db:
        source = db.get(DataSource, data_source_id)
        reads = _closing_reads(db, data_source_id, start - timedelta(days=1), end)
        windows = {
            day: (reads[day - timedelta(days=1)].as_of, reads[day].as_of)
            for day in days
            if day in reads and day - timedelta(days=1) in reads
        }
        moved = _movements(db, data_source_id, windows)
        uncovered = _coverage_gaps(db, source)
        results: list[Result] = []
        for day in days:
            opening, closing = reads.get(day - timedelta(days=1)), reads.get(day)
            results += reconcile_day(
                day,
                opening.balances if opening else None,
                closing.balances if closing else None,
                moved.get(day, {}),
                uncovered=uncovered(day),
                tolerances=tolerances,
            )
        counts = {status.value: sum(r.status == status for r in results) for status in Status}
        run = ReconciliationRun(
            data_source_id=data_source_id,
            job_id=job_id,
            start_day=start,
            end_day=end,
            counts=counts,
        )
        db.add(run)
        db.flush()
        db.execute(
            update(ReconciliationResult)
            .where(
                ReconciliationResult.data_source_id == data_source_id,
                ReconciliationResult.day.between(start, end),
                ReconciliationResult.current.is_(True),
            )
            .values(current=False)
        )
        copy_rows(
            db.connection(),
            "canonical.reconciliation_results",
            "run_id, data_source_id, day, account_id, asset, opening, movements, expected, "
            "actual, difference, tolerance, status, reason, current",
            [_line(run.id, data_source_id, result) for result in results],
        )
        raised = _raise_alerts(db, source, results)
    for alert in raised:
        _notify(runtime, source, alert)
    log.info("reconciled", extra={"data_source_id": str(data_source_id), **counts})
    return run


def _line(run_id: uuid.UUID, data_source_id: uuid.UUID, result: Result) -> str:
    """One result as a COPY line (the year of a data source is 100,000 rows and more)."""
    values = (
        run_id, data_source_id, result.day, result.account, result.asset, result.opening,
        result.movements, result.expected, result.actual, result.difference, result.tolerance,
        result.status.value, result.reason, "t",
    )  # fmt: skip
    return "\t".join(copy_text(value) for value in values)


def _raise_alerts(db: Session, source: DataSource, results: list[Result]) -> list[Alert]:
    """An alert per day that did not close, unless that (data source, day) already has one."""
    by_day: dict[date, list[Result]] = defaultdict(list)
    for result in results:
        if result.status != Status.MATCHED:
            by_day[result.day].append(result)
    if not by_day:
        return []
    accounts = {
        row.id: {"type": row.type, "sub_account": row.sub_account, "key": row.key}
        for row in db.execute(select(Account).where(Account.data_source_id == source.id)).scalars()
    }
    raised = []
    for day, findings in sorted(by_day.items()):
        alert_id = db.execute(
            pg_insert(Alert)
            .values(
                data_source_id=source.id,
                day=day,
                findings=[
                    {
                        "account": accounts.get(r.account),
                        "asset": r.asset,
                        "status": r.status.value,
                        "difference": None if r.difference is None else str(r.difference),
                        "reason": r.reason,
                    }
                    for r in findings
                ],
            )
            .on_conflict_do_nothing(index_elements=["data_source_id", "day"])
            .returning(Alert.id)
        ).scalar()
        if alert_id is not None:
            raised.append(db.get(Alert, alert_id))
    return raised


def _notify(runtime: Runtime, source: DataSource, alert: Alert) -> None:
    """Publish the alert and email the owner; a failure is logged, the alert row stays."""
    message = ReconciliationAlertRaised(
        alert_id=alert.id, data_source_id=source.id, provider=source.type
    )
    try:
        runtime.bus.publish(ReconciliationAlertRaised.TOPIC, message)
        with unit_of_work() as db:
            owner = db.get(User, source.owner_id)
        lines = [
            f"{f['account']['type'] if f['account'] else '?'} {f['asset']}: {f['status']}"
            + (f", difference {f['difference']}" if f["difference"] else "")
            + (f" ({f['reason']})" if f["reason"] else "")
            for f in alert.findings
        ]
        subject = f"Coinfrs: {source.name} did not reconcile on {alert.day.isoformat()}"
        text = (
            f"The balances of {source.name} on {alert.day.isoformat()} (UTC) do not add up:\n\n"
            + "\n".join(lines)
        )
        body = "<br>".join(html.escape(line) for line in text.splitlines())
        runtime.mailer.send(owner.email, subject, text, f"<p>{body}</p>")
        with unit_of_work() as db:
            db.execute(
                update(Alert).where(Alert.id == alert.id).values(notified_at=datetime.now(UTC))
            )
    except Exception as error:
        log.error(
            "alert raised but not delivered",
            extra={"alert_id": str(alert.id), "error_type": type(error).__name__},
        )


def history(
    owner: uuid.UUID,
    data_source_id: uuid.UUID | None,
    start: date | None,
    end: date | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """The current result of every (day, account, asset), newest day first."""
    with unit_of_work() as db:
        if data_source_id is not None:
            owned(db, DataSource, owner, data_source_id, "data source")
        sources = select(DataSource.id).where(
            DataSource.owner_id == owner, DataSource.deleted_at.is_(None)
        )
        statement = (
            select(ReconciliationResult, Account)
            .join(Account, Account.id == ReconciliationResult.account_id)
            .where(
                ReconciliationResult.current.is_(True),
                ReconciliationResult.data_source_id.in_(sources),
            )
        )
        if data_source_id is not None:
            statement = statement.where(ReconciliationResult.data_source_id == data_source_id)
        if start is not None:
            statement = statement.where(ReconciliationResult.day >= start)
        if end is not None:
            statement = statement.where(ReconciliationResult.day <= end)
        if status is not None:
            statement = statement.where(ReconciliationResult.status == status)
        return paginate(
            db,
            statement,
            [ReconciliationResult.day, ReconciliationResult.id],
            limit,
            cursor,
            descending=True,
        )


def request(
    runtime: Runtime, owner: uuid.UUID, data_source_id: uuid.UUID, start: date, end: date
) -> uuid.UUID:
    """Queue a reconciliation of [start, end] (the API's trigger); returns the job id."""
    _days(start, end)
    if end >= datetime.now(UTC).date():
        raise ValidationFailed("only days that have ended can be reconciled", {"end": str(end)})
    with unit_of_work() as db:
        provider = owned(db, DataSource, owner, data_source_id, "data source").type
    job = jobs.create(
        owner, RECONCILE, data_source_id, {"start": start.isoformat(), "end": end.isoformat()}
    )
    message = ReconciliationRequested(
        job_id=job.id, data_source_id=data_source_id, provider=provider, start=start, end=end
    )
    runtime.bus.enqueue(*message.route(), message, task_name=f"reconcile-{job.id}")
    return job.id


def run_requested(runtime: Runtime, message: ReconciliationRequested) -> bool:
    """The task behind a trigger; False when a duplicate delivery finds the job done."""
    if jobs.claim(message.job_id, "reconcile") is None:
        return False
    run = reconcile(runtime, message.data_source_id, message.start, message.end, message.job_id)
    jobs.succeed(message.job_id, reconcile=run.counts)
    return True


def after_sync(runtime: Runtime, message: CanonicalUpdated) -> bool:
    """The pipeline's last step: reconcile the day this sync's balance read closed. Earlier days
    are for the trigger (a backfill has no balance reads of its own for them to close)."""
    with unit_of_work() as db:
        closed = db.execute(
            select(func.max(PositionSnapshot.closes_day)).where(
                PositionSnapshot.data_source_id == message.data_source_id,
                PositionSnapshot.source == "own",
            )
        ).scalar()
    if closed is None:
        return False
    run = reconcile(runtime, message.data_source_id, closed, closed, message.job_id)
    jobs.record(message.job_id, reconcile=run.counts)
    return True
