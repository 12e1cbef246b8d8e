"""HTTP function `openapi`: the bare OpenAPI 3.1 document of every route group."""

from __future__ import annotations

import functools
from typing import Any

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from functions.api import (
    auth,
    datasources,
    entities,
    health,
    jobs,
    portfolios,
    positions,
    reconciliation,
    transactions,
    users,
)
from shared import __version__
from shared.config import bootstrap
from shared.http.openapi import build_document
from shared.http.routing import Call, Router

bootstrap()
router = Router("openapi")
ROUTERS = (
    auth.router,
    users.router,
    portfolios.router,
    entities.router,
    datasources.router,
    jobs.router,
    transactions.router,
    positions.router,
    reconciliation.router,
    health.router,
    router,
)


@functools.cache
def document() -> dict[str, Any]:
    return build_document(ROUTERS, version=__version__)


@router.get(
    "/openapi.json", "The OpenAPI 3.1 document of this API", response=dict, auth=False, raw=True
)
def openapi_document(call: Call) -> dict[str, Any]:
    return document()


@functions_framework.http
def openapi(request: Request) -> Response:
    return router.dispatch(request)
