"""HTTP function `reconciliation`: trigger the daily completeness check and read its results."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import model_validator
from werkzeug.wrappers import Response

from functions.api.common import AccountReply, signed_in_router
from shared.config import bootstrap
from shared.http.envelope import Page
from shared.http.models import PageQuery, ReplyModel, RequestModel
from shared.http.routing import Call
from shared.services import reconciliation as service
from shared.services.ledger import account_of
from shared.types import Amount

runtime = bootstrap()
router = signed_in_router("reconciliation", runtime)


class Trigger(RequestModel):
    """One day (`date`), a range (`start` and `end`), or neither: yesterday (UTC)."""

    data_source_id: UUID
    date: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Trigger:
        if self.date is not None and (self.start is not None or self.end is not None):
            raise ValueError("give date, or start and end, not both")
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end go together")
        return self

    def days(self) -> tuple[dt.date, dt.date]:
        if self.date is not None:
            return self.date, self.date
        if self.start is not None and self.end is not None:
            return self.start, self.end
        yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        return yesterday, yesterday


class JobAccepted(ReplyModel):
    job_id: UUID


class HistoryQuery(PageQuery):
    data_source_id: UUID | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    status: Literal["matched", "mismatch", "missing_data"] | None = None


class ResultReply(ReplyModel):
    date: dt.date
    data_source_id: UUID
    account: AccountReply
    asset: str
    opening: Amount | None
    movements: Amount
    expected: Amount | None
    actual: Amount | None
    difference: Amount | None
    tolerance: Amount | None
    status: Literal["matched", "mismatch", "missing_data"]
    reason: str | None


@router.post(
    "/reconciliation/trigger",
    "Reconcile a day or a range of days of one data source",
    body=Trigger,
    response=JobAccepted,
    status=202,
    errors=(404,),
)
def trigger(call: Call) -> JobAccepted:
    start, end = call.body.days()
    return JobAccepted(
        job_id=service.request(runtime, call.user.id, call.body.data_source_id, start, end)
    )


@router.get(
    "/reconciliation/history",
    "Current results per day, account and asset, newest first",
    query=HistoryQuery,
    response=list[ResultReply],
    errors=(404,),
)
def history(call: Call) -> Page:
    query = call.query
    page = service.history(
        call.user.id,
        query.data_source_id,
        query.start,
        query.end,
        query.status,
        query.limit,
        query.cursor,
    )
    items = [
        ResultReply(
            date=result.day,
            data_source_id=result.data_source_id,
            account=account_of(account),
            asset=result.asset,
            opening=result.opening,
            movements=result.movements,
            expected=result.expected,
            actual=result.actual,
            difference=result.difference,
            tolerance=result.tolerance,
            status=result.status.value,
            reason=result.reason,
        )
        for result, account in page.items
    ]
    return Page(items, page.next_cursor)


@functions_framework.http
def reconciliation(request: Request) -> Response:
    return router.dispatch(request)
