"""HTTP function `entities`: legal entities inside the signed-in user's service."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import Field
from werkzeug.wrappers import Response

from functions.api.common import signed_in_router, uuid_path
from shared.config import bootstrap
from shared.db.models import Entity
from shared.http.envelope import Page
from shared.http.models import PageQuery, ReplyModel, RequestModel
from shared.http.routing import Call
from shared.services import portfolios as service

runtime = bootstrap()
router = signed_in_router("entities", runtime)


class EntityFields(RequestModel):
    """Create and replace (PUT) take the same fields; omitted optional fields are cleared."""

    portfolio_id: UUID
    name: str = Field(min_length=1, max_length=200)
    legal_name: str | None = Field(default=None, max_length=300)
    jurisdiction: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
        description="ISO 3166-1 alpha-2 country, optionally with an ISO 3166-2 subdivision.",
    )
    functional_currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the books' currency."
    )


class EntityQuery(PageQuery):
    portfolio_id: UUID | None = None


class EntityReply(ReplyModel):
    id: UUID
    portfolio_id: UUID
    name: str
    legal_name: str | None
    jurisdiction: str | None
    functional_currency: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Entity) -> EntityReply:
        return cls.model_validate(row, from_attributes=True)


@router.post(
    "/entities/",
    "Create an entity in one of your portfolios",
    body=EntityFields,
    response=EntityReply,
    status=201,
    errors=(404, 409),
)
def create(call: Call) -> EntityReply:
    return EntityReply.of(service.create_entity(call.user.id, call.body.model_dump()))


@router.get(
    "/entities/", "List entities", query=EntityQuery, response=list[EntityReply], errors=(404,)
)
def listing(call: Call) -> Page:
    query = call.query
    page = service.list_entities(call.user.id, query.portfolio_id, query.limit, query.cursor)
    return Page([EntityReply.of(row) for row in page.items], page.next_cursor)


@router.get("/entities/{id}", "One entity", response=EntityReply)
def one(call: Call) -> EntityReply:
    return EntityReply.of(service.get_entity(call.user.id, uuid_path(call)))


@router.put(
    "/entities/{id}",
    "Replace an entity's fields (it may move to another of your portfolios)",
    body=EntityFields,
    response=EntityReply,
    errors=(409,),
)
def replace(call: Call) -> EntityReply:
    row = service.update_entity(call.user.id, uuid_path(call), call.body.model_dump())
    return EntityReply.of(row)


@router.delete(
    "/entities/{id}",
    "Delete an entity (it must have no data sources)",
    response=EntityReply,
    errors=(409,),
)
def delete(call: Call) -> EntityReply:
    owner, entity_id = call.user.id, uuid_path(call)
    row = service.get_entity(owner, entity_id)
    service.delete_entity(owner, entity_id)
    return EntityReply.of(row)


@functions_framework.http
def entities(request: Request) -> Response:
    return router.dispatch(request)
