"""The dispatcher: every reply an envelope, bad input a clear error, nothing leaked."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from uuid import UUID

import pytest
from pydantic import Field
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from shared import errors
from shared.http.envelope import Page, Reply
from shared.http.models import PageQuery, ReplyModel, RequestModel
from shared.http.routing import MAX_BODY_BYTES, Call, Router

router = Router("things")


class NewThing(RequestModel):
    name: str = Field(min_length=1)
    amount: Decimal


class Thing(ReplyModel):
    id: UUID
    name: str
    amount: Decimal


THING_ID = UUID("00000000-0000-4000-8000-000000000001")


@router.post("/things/", "Create a thing", body=NewThing, response=Thing, status=201, auth=False)
def create(call: Call) -> Thing:
    return Thing(id=THING_ID, name=call.body.name, amount=call.body.amount)


@router.get("/things/", "List things", query=PageQuery, response=list[Thing], auth=False)
def listing(call: Call) -> Page:
    return Page([Thing(id=THING_ID, name="a", amount=Decimal("0.00012000"))], "next")


@router.get("/things/{id}", "One thing", response=Thing, auth=False)
def one(call: Call) -> Thing:
    raise errors.NotFound("no such thing")


@router.delete("/things/{id}", "Remove a thing", auth=False)
def remove(call: Call) -> Reply:
    raise errors.RateLimited("slow down", retry_after=30)


@router.get("/secret", "Needs sign-in", response=Thing)
def secret(call: Call) -> Thing:
    raise AssertionError("never reached without a user")


@router.get("/boom", "Fails", auth=False)
def boom(call: Call) -> None:
    raise RuntimeError("password=hunter2 leaked into an exception")


def _app(environ, start_response):
    return router.dispatch(Request(environ))(environ, start_response)


@pytest.fixture
def client() -> Client:
    return Client(_app, Response)


def _json(response) -> dict:
    assert response.mimetype == "application/json"
    return json.loads(response.get_data())


def test_success_is_an_envelope_with_decimal_strings(client):
    response = client.post("/api/v1/things/", json={"data": {"name": "x", "amount": "0.00012000"}})
    body = _json(response)
    assert response.status_code == 201
    assert body["success"] is True
    assert body["data"] == {"id": str(THING_ID), "name": "x", "amount": "0.00012000"}
    assert set(body["meta"]) == {"timestamp", "request_id"}
    assert body["meta"]["timestamp"].endswith("Z")


def test_a_json_number_amount_keeps_every_digit(client):
    raw = b'{"data": {"name": "x", "amount": 0.1000000000000000055511151231257827}}'
    body = _json(client.post("/api/v1/things/", data=raw, content_type="application/json"))
    assert body["data"]["amount"] == "0.1000000000000000055511151231257827"


def test_lists_carry_next_cursor_in_meta(client):
    body = _json(client.get("/api/v1/things/?limit=10"))
    assert body["data"][0]["amount"] == "0.00012000"
    assert body["meta"]["next_cursor"] == "next"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", 'a JSON body {"data": {...}} is required'),
        (b"[1, 2]", 'request body must be a JSON object {"data": {...}}'),
        (b'{"name": "x"}', 'request body must be a JSON object {"data": {...}}'),
        (b"\xff\xfe", "request body is not valid JSON"),
    ],
)
def test_malformed_bodies_are_validation_errors(client, raw, message):
    response = client.post("/api/v1/things/", data=raw, content_type="application/json")
    body = _json(response)
    assert response.status_code == 422
    assert body["success"] is False
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["message"] == message


def test_unknown_fields_are_named(client):
    response = client.post(
        "/api/v1/things/", json={"data": {"name": "x", "amount": "1", "colour": "red"}, "x": 1}
    )
    assert _json(response)["error"]["details"]["unknown_fields"] == ["x"]
    response = client.post(
        "/api/v1/things/", json={"data": {"name": "x", "amount": "1", "colour": "red"}}
    )
    body = _json(response)
    assert response.status_code == 422
    assert body["error"]["details"]["unknown_fields"] == ["data.colour"]


def test_field_errors_never_echo_the_input(client):
    response = client.post("/api/v1/things/", json={"data": {"name": "", "amount": "sk-SECRET"}})
    body = _json(response)
    assert response.status_code == 422
    fields = {item["field"] for item in body["error"]["details"]["errors"]}
    assert fields == {"data.name", "data.amount"}
    assert "sk-SECRET" not in response.get_data(as_text=True)


def test_bad_and_unknown_query_parameters(client):
    assert client.get("/api/v1/things/?limit=0").status_code == 422
    assert client.get("/api/v1/things/?limit=501").status_code == 422
    body = _json(client.get("/api/v1/things/?limt=5"))
    assert body["error"]["details"]["unknown_fields"] == ["query.limt"]
    assert client.get("/api/v1/things/?limit=1&limit=2").status_code == 422


def test_unknown_route_is_404_envelope(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert _json(response)["error"]["code"] == "NOT_FOUND"


def test_wrong_method_is_405_with_allow(client):
    response = client.put("/api/v1/things/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, OPTIONS, POST"
    assert _json(response)["error"]["details"]["allowed"] == ["GET", "OPTIONS", "POST"]


def test_domain_errors_map_to_codes(client):
    response = client.get(f"/api/v1/things/{THING_ID}")
    assert (response.status_code, _json(response)["error"]["code"]) == (404, "NOT_FOUND")
    response = client.delete(f"/api/v1/things/{THING_ID}")
    assert (response.status_code, _json(response)["error"]["code"]) == (429, "RATE_LIMIT_ERROR")
    assert response.headers["Retry-After"] == "30"


def test_routes_require_sign_in_by_default(client):
    response = client.get("/api/v1/secret")
    assert response.status_code == 401
    assert _json(response)["error"]["code"] == "AUTHENTICATION_ERROR"


def test_unexpected_errors_are_500_without_their_text(client, caplog):
    caplog.set_level(logging.ERROR, logger="coinfrs.http")
    response = client.get("/api/v1/boom", headers={"X-Request-ID": "trace-me-1"})
    body = _json(response)
    assert response.status_code == 500
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert "hunter2" not in response.get_data(as_text=True)
    assert body["meta"]["request_id"] == "trace-me-1"
    assert any(record.getMessage() == "unhandled error" for record in caplog.records)


def test_request_id_is_honoured_or_replaced(client):
    response = client.get("/api/v1/things/", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert _json(response)["meta"]["request_id"] == "abc-123"
    response = client.get("/api/v1/things/", headers={"X-Request-ID": "bad id with spaces"})
    generated = response.headers["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32


def test_oversized_body_is_413(client):
    response = client.post(
        "/api/v1/things/", data=b"x" * (MAX_BODY_BYTES + 1), content_type="application/json"
    )
    assert response.status_code == 413
    assert _json(response)["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_cors_for_listed_origins_only(client):
    allowed = "https://app.coinfrs.test"
    response = client.options(
        "/api/v1/things/",
        headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == allowed
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    response = client.get("/api/v1/things/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_paths_match_with_or_without_prefix_and_slash(client):
    assert client.get("/things").status_code == 200
    assert client.get("/api/v1/things").status_code == 200
