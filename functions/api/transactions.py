"""HTTP function `transactions`: the caller's canonical transactions with their movements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import Field
from werkzeug.wrappers import Response

from functions.api.common import AccountReply, signed_in_router
from shared.config import bootstrap
from shared.db.models import TransactionType
from shared.http.envelope import Page
from shared.http.models import PageQuery, ReplyModel
from shared.http.routing import Call
from shared.services import ledger
from shared.types import Amount

runtime = bootstrap()
router = signed_in_router("transactions", runtime)


class TransactionQuery(PageQuery):
    data_source_id: UUID | None = None
    entity_id: UUID | None = None
    start: date | None = Field(default=None, description="First UTC day (inclusive).")
    end: date | None = Field(default=None, description="Last UTC day (inclusive).")
    asset: str | None = Field(default=None, max_length=32)
    type: TransactionType | None = None


class MovementReply(ReplyModel):
    account: AccountReply
    asset: str
    provider_asset: str | None
    amount: Amount
    kind: Literal["principal", "fee"]


class TransactionReply(ReplyModel):
    id: UUID
    data_source_id: UUID
    type: TransactionType
    occurred_at: datetime
    external_id: str | None
    source_raw_id: str
    movements: list[MovementReply]


@router.get(
    "/transactions/",
    "Canonical transactions, newest first",
    query=TransactionQuery,
    response=list[TransactionReply],
    errors=(404,),
)
def listing(call: Call) -> Page:
    query = call.query
    filters = ledger.TransactionFilter(
        data_source_id=query.data_source_id,
        entity_id=query.entity_id,
        start=query.start,
        end=query.end,
        asset=query.asset,
        type=query.type.value if query.type else None,
    )
    page = ledger.list_transactions(call.user.id, filters, query.limit, query.cursor)
    return Page([TransactionReply.model_validate(item) for item in page.items], page.next_cursor)


@functions_framework.http
def transactions(request: Request) -> Response:
    return router.dispatch(request)
