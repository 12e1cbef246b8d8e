"""The OpenAPI 3.1 document, generated from the same route tables and models that serve requests."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.http.errors import CODES
from shared.http.routing import API_PREFIX, Route, Router

_REF = "#/components/schemas/{model}"

_META = {
    "type": "object",
    "required": ["timestamp", "request_id"],
    "properties": {
        "timestamp": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
        "next_cursor": {"type": ["string", "null"]},
    },
}
_ERROR = {
    "type": "object",
    "required": ["success", "error", "meta"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "enum": sorted(CODES)},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        },
        "meta": {"$ref": "#/components/schemas/Meta"},
    },
}
_STATUS_TEXT = {
    401: "Sign-in required or token invalid",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Body too large",
    422: "Validation error",
    429: "Rate limited",
    500: "Internal error",
    503: "A dependency is unavailable",
}


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


Refs = dict[tuple[type[BaseModel], str], dict[str, Any]]


def _schema_of(annotation: Any, mode: str, refs: Refs) -> dict[str, Any]:
    if annotation is None:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return refs[(annotation, mode)]
    if typing.get_origin(annotation) is list:
        return {"type": "array", "items": _schema_of(typing.get_args(annotation)[0], mode, refs)}
    if annotation is dict or typing.get_origin(annotation) is dict:
        return {"type": "object"}
    raise TypeError(f"cannot describe {annotation!r} in OpenAPI")


def _operation(route: Route, group: str, definitions: dict[str, Any], refs: Refs) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"}
            if name == "id" or name.endswith("_id")
            else {"type": "string"},
        }
        for name in route.path_params
    ]
    if route.query is not None:
        schema = definitions[refs[(route.query, "validation")]["$ref"].rsplit("/", 1)[1]]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": prop,
                    **({"description": prop["description"]} if "description" in prop else {}),
                }
            )
    if route.raw:
        success = {
            "content": {
                "application/json": {"schema": _schema_of(route.response, "serialization", refs)}
            }
        }
    else:
        data = _schema_of(route.response, "serialization", refs)
        success = {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["success", "data", "meta"],
                        "properties": {
                            "success": {"const": True},
                            "data": data,
                            "meta": {"$ref": "#/components/schemas/Meta"},
                        },
                    }
                }
            }
        }
    error_statuses = {500, *route.errors}
    if route.body is not None or route.query is not None or route.path_params:
        error_statuses.add(422)
    if route.body is not None:
        error_statuses.add(413)
    if route.auth:
        error_statuses.add(401)
    if route.path_params:
        error_statuses.add(404)
    responses: dict[str, Any] = {
        str(route.status): {"description": route.summary, **success},
    }
    for status in sorted(error_statuses):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{group}_{route.handler.__name__}",
        "summary": route.summary,
        "tags": [group],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "additionalProperties": False,
                        "properties": {"data": _schema_of(route.body, "validation", refs)},
                    }
                }
            },
        }
    operation["security"] = [{"bearerAuth": []}] if route.auth else []
    return operation


def build_document(
    routers: Iterable[Router], *, version: str, server_url: str = API_PREFIX
) -> dict[str, Any]:
    """The whole API as one OpenAPI 3.1 document."""
    routers = list(routers)
    keys: dict[tuple[type[BaseModel], str], None] = {}
    for router in routers:
        for route in router.routes:
            keys.update(dict.fromkeys((m, "serialization") for m in _models(route.response)))
            for model in [*_models(route.body), *_models(route.query)]:
                keys[(model, "validation")] = None
    refs, schema = models_json_schema(list(keys), ref_template=_REF) if keys else ({}, {})
    definitions: dict[str, Any] = schema.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for router in routers:
        for route in router.routes:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(
                route, router.group, definitions, refs
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Coinfrs API",
            "version": version,
            "description": "Institutional crypto accounting: connected sources, canonical ledger, "
            "daily completeness reconciliation and PnL. Every reply is an envelope "
            "(`success`, `data` or `error`, `meta`).",
        },
        "servers": [{"url": server_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**definitions, "Meta": _META, "Error": _ERROR},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
