"""Route tables and the dispatcher that turns a Cloud Functions HTTP request into an envelope."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from werkzeug.wrappers import Request, Response

from shared import errors
from shared.config import get_settings
from shared.http import envelope
from shared.http.envelope import Page, Reply
from shared.http.errors import (
    ApiError,
    from_domain,
    internal_error,
    method_not_allowed,
    not_found,
    validation_error,
)
from shared.observability import capture_exception, request_id_var, trace_var

log = logging.getLogger("coinfrs.http")

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Call:
    """What a handler receives: the parsed, validated request."""

    request: Request
    request_id: str
    path: dict[str, str] = field(default_factory=dict)
    body: Any = None
    query: Any = None
    user: Any = None


Handler = Callable[[Call], Any]


@dataclass(frozen=True)
class Route:
    """One operation: method + path template, its models (which also feed OpenAPI), its handler."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    auth: bool = True
    paginated: bool = False
    errors: tuple[int, ...] = ()
    # Bare replies (no envelope), e.g. the OpenAPI document itself.
    raw: bool = False

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", _normalise(self.path)) + "$")

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)


def _normalise(path: str) -> str:
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        path = path[len(API_PREFIX) :]
    return path.rstrip("/") or "/"


Authenticator = Callable[[Request], Any]


def _sign_in_required(_request: Request) -> Any:
    raise errors.AuthenticationFailed("sign-in is required")


class Router:
    """The route table of one route group (one deployed HTTP function)."""

    def __init__(self, group: str, authenticator: Authenticator = _sign_in_required) -> None:
        self.group = group
        self.routes: list[Route] = []
        self._authenticator = authenticator

    def route(
        self, method: str, path: str, summary: str, **options: Any
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), path, handler, summary, **options))
            return handler

        return register

    def get(self, path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, summary, **options)

    def post(self, path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, summary, **options)

    def put(self, path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, summary, **options)

    def delete(self, path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, summary, **options)

    def _match(self, path: str) -> list[tuple[Route, dict[str, str]]]:
        found = []
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                found.append((route, match.groupdict()))
        return found

    def dispatch(self, request: Request) -> Response:
        """Serve one request; every reply, success or failure, is an envelope."""
        started = time.perf_counter()
        request_id = _request_id(request)
        tokens = (request_id_var.set(request_id), trace_var.set(_trace(request)))
        try:
            response = self._serve(request, request_id)
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "httpRequest": {
                        "requestMethod": request.method,
                        "requestUrl": request.path,
                        "status": response.status_code,
                        "latency": f"{time.perf_counter() - started:.6f}s",
                        "userAgent": request.user_agent.string[:200],
                    }
                },
            )
        finally:
            request_id_var.reset(tokens[0])
            trace_var.reset(tokens[1])
        response.headers["X-Request-ID"] = request_id
        _cors(request, response)
        return response

    def _serve(self, request: Request, request_id: str) -> Response:
        path = _normalise(request.path)
        matches = self._match(path)
        try:
            if not matches:
                raise not_found(f"no route {request.method} {API_PREFIX}{path}")
            allowed = sorted({route.method for route, _ in matches} | {"OPTIONS"})
            if request.method == "OPTIONS":
                return Response(status=204, headers={"Allow": ", ".join(allowed)})
            chosen = [(r, p) for r, p in matches if r.method == request.method]
            if not chosen and request.method == "HEAD":
                chosen = [(r, p) for r, p in matches if r.method == "GET"]
            if not chosen:
                raise method_not_allowed(allowed)
            route, params = chosen[0]
            call = Call(request=request, request_id=request_id, path=params)
            if route.auth:
                call.user = self._authenticator(request)
            call.query = _parse_query(request, route.query)
            call.body = _parse_body(request, route.body)
            result = route.handler(call)
            if route.raw:
                return envelope.json_response(result, route.status)
            return envelope.success(_as_reply(result, route.status), request_id)
        except ApiError as error:
            return envelope.failure(error, request_id)
        except errors.DomainError as error:
            return envelope.failure(from_domain(error), request_id)
        except Exception as error:  # the one place an unexpected error becomes a 500
            log.exception("unhandled error", extra={"error_type": type(error).__name__})
            capture_exception(error)
            return envelope.failure(internal_error(), request_id)


def _as_reply(result: Any, status: int) -> Reply:
    if isinstance(result, Reply):
        return result
    if isinstance(result, Page):
        return Reply(result.items, status, meta={"next_cursor": result.next_cursor})
    return Reply(result, status)


def _request_id(request: Request) -> str:
    incoming = request.headers.get("X-Request-ID", "")
    return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _trace(request: Request) -> str | None:
    header = request.headers.get("X-Cloud-Trace-Context", "")
    trace_id = header.split("/", 1)[0]
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        return None
    return f"projects/{get_settings().gcp_project}/traces/{trace_id}"


def _parse_query(request: Request, model: type[BaseModel] | None) -> Any:
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise validation_error("a query parameter is repeated", {"repeated": repeated})
    values = request.args.to_dict()
    if model is None:
        if values:
            raise validation_error(
                "unknown query parameters", {"unknown_fields": [f"query.{k}" for k in values]}
            )
        return None
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise validation_error("query is not valid", errors.field_errors(error, "query")) from None


def _parse_body(request: Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body larger than {MAX_BODY_BYTES} bytes")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise validation_error('a JSON body {"data": {...}} is required')
    try:
        # Decimal, never float: a number sent where an amount belongs must not lose digits.
        document = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise validation_error("request body is not valid JSON") from None
    if not isinstance(document, dict) or "data" not in document:
        raise validation_error('request body must be a JSON object {"data": {...}}')
    extra = sorted(set(document) - {"data"})
    if extra:
        raise validation_error("unknown fields", {"unknown_fields": extra, "errors": []})
    try:
        return model.model_validate(document["data"])
    except ValidationError as error:
        raise validation_error("body is not valid", errors.field_errors(error, "data")) from None


_CORS_HEADERS = "Authorization, Content-Type, X-Request-ID"


def _cors(request: Request, response: Response) -> None:
    origin = request.headers.get("Origin")
    response.vary.add("Origin")
    if not origin or origin not in get_settings().cors_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    # The refresh token travels in a cookie, so credentials must be allowed for listed origins.
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = response.headers.get("Allow", "")
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"


def serve_framework_errors_as_envelopes(app: Any) -> None:
    """Answer what the functions framework's own Flask app refuses before our router sees it (a
    path its URL rules cannot match, such as one holding a newline) with the same envelope."""
    from werkzeug.exceptions import HTTPException

    fallback = Router("framework")

    def reply(error: HTTPException) -> Response:
        from flask import request

        return fallback.dispatch(request)

    app.register_error_handler(HTTPException, reply)
