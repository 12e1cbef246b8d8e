"""HTTP function `datasources`: connect read-only provider keys to the caller's entities."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import Field
from werkzeug.wrappers import Response

from functions.api.common import signed_in_router, uuid_path
from shared.config import bootstrap
from shared.db.models import DataSource
from shared.http.envelope import Page
from shared.http.models import PageQuery, ReplyModel, RequestModel
from shared.http.routing import Call
from shared.services import datasources as service
from shared.services import sync as sync_service

runtime = bootstrap()
router = signed_in_router("datasources", runtime)


class NewDataSource(RequestModel):
    entity_id: UUID
    type: str = Field(min_length=1, max_length=32, description="A `type` of /datasources/types.")
    name: str = Field(min_length=1, max_length=200)
    credentials: dict[str, Any] = Field(
        description="Fields of the type's credential_schema. Never returned by the API."
    )


class DataSourceQuery(PageQuery):
    entity_id: UUID | None = None


class DataSourceType(ReplyModel):
    type: str
    display_name: str
    credential_schema: dict[str, Any]


class DataSourceReply(ReplyModel):
    id: UUID
    entity_id: UUID
    type: str
    name: str
    status: str
    permissions: dict[str, Any]
    created_at: datetime
    last_synced_at: datetime | None

    @classmethod
    def of(cls, row: DataSource) -> DataSourceReply:
        return cls.model_validate(row, from_attributes=True)


@router.get(
    "/datasources/types", "Providers and their credential forms", response=list[DataSourceType]
)
def types(call: Call) -> list[DataSourceType]:
    return [DataSourceType(**vars(item)) for item in service.describe_types()]


@router.post(
    "/datasources/",
    "Connect a read-only key (checked with the provider first)",
    body=NewDataSource,
    response=DataSourceReply,
    status=201,
    errors=(404, 429, 503),
)
def create(call: Call) -> DataSourceReply:
    body = call.body
    row = service.create(
        runtime, call.user.id, body.entity_id, body.type, body.name, body.credentials
    )
    return DataSourceReply.of(row)


@router.get(
    "/datasources/",
    "List data sources",
    query=DataSourceQuery,
    response=list[DataSourceReply],
    errors=(404,),
)
def listing(call: Call) -> Page:
    query = call.query
    page = service.list_data_sources(call.user.id, query.entity_id, query.limit, query.cursor)
    return Page([DataSourceReply.of(row) for row in page.items], page.next_cursor)


@router.get("/datasources/{id}", "One data source", response=DataSourceReply)
def one(call: Call) -> DataSourceReply:
    return DataSourceReply.of(service.get(call.user.id, uuid_path(call)))


@router.post(
    "/datasources/{id}/validate",
    "Re-check the key with the provider",
    response=DataSourceReply,
    errors=(429, 503),
)
def validate(call: Call) -> DataSourceReply:
    return DataSourceReply.of(service.validate(runtime, call.user.id, uuid_path(call)))


class SyncRequest(RequestModel):
    start: date | None = Field(default=None, description="First UTC day of history to fetch.")
    end: date | None = Field(default=None, description="Last UTC day of history to fetch.")


class SyncAccepted(ReplyModel):
    job_id: UUID


@router.post(
    "/datasources/{id}/sync",
    "Fetch the provider's history and current balances, then update the ledger",
    body=SyncRequest,
    response=SyncAccepted,
    status=202,
    errors=(409,),
)
def sync(call: Call) -> SyncAccepted:
    job = sync_service.request_sync(
        runtime, call.user.id, uuid_path(call), call.body.start, call.body.end
    )
    return SyncAccepted(job_id=job.id)


@router.delete(
    "/datasources/{id}", "Disconnect: soft delete, credentials destroyed", response=DataSourceReply
)
def delete(call: Call) -> DataSourceReply:
    return DataSourceReply.of(service.delete(runtime, call.user.id, uuid_path(call)))


@functions_framework.http
def datasources(request: Request) -> Response:
    return router.dispatch(request)
