"""HTTP function `positions`: what each account held, as of the snapshot that closes a day."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import Field
from werkzeug.wrappers import Response

from functions.api.common import AccountReply, signed_in_router
from shared.config import bootstrap
from shared.http.models import ReplyModel, RequestModel
from shared.http.routing import Call
from shared.services import ledger
from shared.types import Amount

runtime = bootstrap()
router = signed_in_router("positions", runtime)


class PositionQuery(RequestModel):
    data_source_id: UUID | None = None
    date: dt.date | None = Field(
        default=None, description="UTC day: the snapshot that closes it (default: the latest)."
    )


class PositionReply(ReplyModel):
    account: AccountReply
    asset: str
    quantity: Amount
    as_of: dt.datetime
    source: str
    data_source_id: UUID


@router.get(
    "/positions/",
    "Positions per account and asset",
    query=PositionQuery,
    response=list[PositionReply],
    errors=(404,),
)
def listing(call: Call) -> list[PositionReply]:
    rows = ledger.positions(call.user.id, call.query.data_source_id, call.query.date)
    return [PositionReply.model_validate(row) for row in rows]


@functions_framework.http
def positions(request: Request) -> Response:
    return router.dispatch(request)
