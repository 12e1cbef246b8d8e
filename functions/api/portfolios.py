"""HTTP function `portfolios`: the signed-in user's portfolios (CRUD, paginated, soft delete)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import Field
from werkzeug.wrappers import Response

from functions.api.common import signed_in_router, uuid_path
from shared.config import bootstrap
from shared.db.models import Portfolio
from shared.http.envelope import Page
from shared.http.models import PageQuery, ReplyModel, RequestModel
from shared.http.routing import Call
from shared.services import portfolios as service

runtime = bootstrap()
router = signed_in_router("portfolios", runtime)


class PortfolioFields(RequestModel):
    """Create and replace (PUT) take the same fields; an omitted description is cleared."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class PortfolioReply(ReplyModel):
    id: UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Portfolio) -> PortfolioReply:
        return cls.model_validate(row, from_attributes=True)


@router.post(
    "/portfolios/",
    "Create a portfolio",
    body=PortfolioFields,
    response=PortfolioReply,
    status=201,
    errors=(409,),
)
def create(call: Call) -> PortfolioReply:
    body = call.body
    return PortfolioReply.of(service.create_portfolio(call.user.id, body.name, body.description))


@router.get("/portfolios/", "List portfolios", query=PageQuery, response=list[PortfolioReply])
def listing(call: Call) -> Page:
    page = service.list_portfolios(call.user.id, call.query.limit, call.query.cursor)
    return Page([PortfolioReply.of(row) for row in page.items], page.next_cursor)


@router.get("/portfolios/{id}", "One portfolio", response=PortfolioReply)
def one(call: Call) -> PortfolioReply:
    return PortfolioReply.of(service.get_portfolio(call.user.id, uuid_path(call)))


@router.put(
    "/portfolios/{id}",
    "Replace a portfolio's fields",
    body=PortfolioFields,
    response=PortfolioReply,
    errors=(409,),
)
def replace(call: Call) -> PortfolioReply:
    body = call.body
    row = service.update_portfolio(call.user.id, uuid_path(call), body.name, body.description)
    return PortfolioReply.of(row)


@router.delete(
    "/portfolios/{id}",
    "Delete a portfolio (it must hold no entities)",
    response=PortfolioReply,
    errors=(409,),
)
def delete(call: Call) -> PortfolioReply:
    owner, portfolio_id = call.user.id, uuid_path(call)
    row = service.get_portfolio(owner, portfolio_id)
    service.delete_portfolio(owner, portfolio_id)
    return PortfolioReply.of(row)


@functions_framework.http
def portfolios(request: Request) -> Response:
    return router.dispatch(request)
