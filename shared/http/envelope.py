"""The reply envelope of DESIGN.md §7 and the JSON encoding every reply uses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from werkzeug.wrappers import Response

from shared.http.errors import ApiError


@dataclass
class Reply:
    """What a handler returns when the default status or plain data is not enough."""

    data: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # (name, value, options for werkzeug's set_cookie); value None deletes the cookie
    cookies: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Page:
    """One page of a list: the items and the cursor of the next page (None on the last)."""

    items: list[Any]
    next_cursor: str | None


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """Plain JSON values; Decimal becomes a string (never a float), datetimes ISO 8601."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return to_jsonable_python(value)


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(jsonable(body), ensure_ascii=False, separators=(",", ":"))
    response = Response(payload, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _meta(request_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"timestamp": utc_timestamp(), "request_id": request_id, **(extra or {})}


def success(reply: Reply, request_id: str) -> Response:
    body = {"success": True, "data": reply.data, "meta": _meta(request_id, reply.meta)}
    response = json_response(body, reply.status, reply.headers)
    for name, value, options in reply.cookies:
        if value is None:
            response.delete_cookie(name, **options)
        else:
            response.set_cookie(name, value, **options)
    return response


def failure(error: ApiError, request_id: str) -> Response:
    body = {
        "success": False,
        "error": {"code": error.code, "message": error.message, "details": error.details},
        "meta": _meta(request_id),
    }
    return json_response(body, error.status, error.headers)
