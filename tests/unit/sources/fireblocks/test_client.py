"""Fireblocks client: the JWT of every request, the §2.3 probe decisions, and error mapping."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.config import load_settings
from shared.errors import ProviderRefused, ProviderUnavailable, RateLimited
from shared.sources.fireblocks.client import (
    DEFAULT_RETRY_AFTER_SECONDS,
    Client,
    RequestFailed,
    sign_request,
)
from shared.sources.fireblocks.credentials import ApiKeyCredentials

BASE = "https://api.fireblocks.test"
API_KEY = "0f1e2d3c-4b5a-4968-8776-655443322110"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
VAULT = "/v1/vault/accounts_paged?limit=1"
USERS = "/v1/management/api_users"
EDITOR = "/v1/supported_assets"
VAULT_PAGE = {"accounts": [{"id": "0", "name": "Treasury", "assets": []}], "paging": {}}

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def credentials(private_key) -> ApiKeyCredentials:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return ApiKeyCredentials(api_key=API_KEY, private_key=pem)


class Recorder:
    """A fake Fireblocks: answers from `answers` by path+query and keeps every request."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get(request.url.raw_path.decode(), (404, {"message": "Not Found"}))
        if callable(answer):
            return answer(request)
        status, body, *headers = answer
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers[0] if headers else {})

    @property
    def paths(self) -> list[str]:
        return [r.url.raw_path.decode() for r in self.requests]


@pytest.fixture
def fake_fireblocks(credentials) -> Callable[[dict[str, Any]], tuple[Client, Recorder]]:
    def make(answers: dict[str, Any]) -> tuple[Client, Recorder]:
        recorder = Recorder(answers)
        http = httpx.Client(transport=httpx.MockTransport(recorder))
        return Client(load_settings(fireblocks_url=BASE), credentials, http=http), recorder

    return make


def _claims(request: httpx.Request, private_key) -> dict[str, Any]:
    assert request.headers["X-API-Key"] == API_KEY
    scheme, _, token = request.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "JWT"}
    return jwt.decode(
        token, private_key.public_key(), algorithms=["RS256"], options={"verify_exp": True}
    )


# --- the JWT --------------------------------------------------------------------------------


def test_every_request_is_signed_with_the_exact_claims(fake_fireblocks, private_key):
    client, recorder = fake_fireblocks(
        {"/v1/transactions?after=1716000000000&limit=500": (200, [])}
    )
    before = int(time.time())
    client.get("/v1/transactions", {"after": "1716000000000", "limit": 500})
    after = int(time.time())

    (request,) = recorder.requests
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/v1/transactions?after=1716000000000&limit=500"
    claims = _claims(request, private_key)
    assert set(claims) == {"uri", "nonce", "iat", "exp", "sub", "bodyHash"}
    assert claims["uri"] == "/v1/transactions?after=1716000000000&limit=500"
    assert claims["sub"] == API_KEY
    assert claims["bodyHash"] == EMPTY_SHA256 == hashlib.sha256(request.content).hexdigest()
    assert before <= claims["iat"] <= after
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 30
    assert claims["exp"] - claims["iat"] <= 55


def test_uri_claim_is_the_query_exactly_as_encoded_on_the_wire(fake_fireblocks, private_key):
    wire = "/v1/vault/accounts_paged?namePrefix=Ops+%5BEU%5D&limit=2"
    client, recorder = fake_fireblocks({wire: (200, VAULT_PAGE)})
    client.get("/v1/vault/accounts_paged", {"namePrefix": "Ops [EU]", "limit": 2})
    (request,) = recorder.requests
    assert request.url.raw_path.decode() == wire
    assert _claims(request, private_key)["uri"] == wire


def test_a_path_with_its_own_query_is_signed_as_given(fake_fireblocks, private_key):
    # The next-page header of §3.2 may hand us a path with a cursor already in it.
    client, recorder = fake_fireblocks({"/v1/transactions?next=abc%3D%3D": (200, [])})
    client.get("/v1/transactions?next=abc%3D%3D")
    assert _claims(recorder.requests[0], private_key)["uri"] == "/v1/transactions?next=abc%3D%3D"


def test_nonce_is_unique_per_request(fake_fireblocks, private_key):
    client, recorder = fake_fireblocks({"/v1/vault/accounts_paged?limit=1": (200, VAULT_PAGE)})
    for _ in range(20):
        client.get("/v1/vault/accounts_paged", {"limit": 1})
    nonces = [_claims(r, private_key)["nonce"] for r in recorder.requests]
    assert len(set(nonces)) == 20
    assert all(isinstance(n, str) and len(n) >= 32 for n in nonces)


def test_body_hash_covers_exactly_the_bytes_sent(private_key):
    body = b'{"amount":"1.5","assetId":"BTC"}'
    token = sign_request(API_KEY, private_key, "/v1/x", body, now=1_700_000_000, nonce="n1")
    claims = jwt.decode(
        token, private_key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["bodyHash"] == hashlib.sha256(body).hexdigest()
    assert claims["bodyHash"] != hashlib.sha256(body + b" ").hexdigest()
    assert claims == {
        "uri": "/v1/x",
        "nonce": "n1",
        "iat": 1_700_000_000,
        "exp": 1_700_000_030,
        "sub": API_KEY,
        "bodyHash": hashlib.sha256(body).hexdigest(),
    }
    empty = sign_request(API_KEY, private_key, "/v1/x", now=1_700_000_000)
    assert jwt.decode(empty, options={"verify_signature": False})["bodyHash"] == EMPTY_SHA256


def test_only_v1_paths_are_signed(fake_fireblocks):
    client, recorder = fake_fireblocks({})
    for path in ("https://evil.example/v1/x", "//evil.example/v1/x", "v1/x", "/v2/x"):
        with pytest.raises(ValueError):
            client.get(path)
    assert recorder.requests == []


# --- the probe (reference §2.3) -------------------------------------------------------------

DENIED_403 = (403, {"message": "Forbidden", "code": -8})
DENIED_401 = (401, b'{"message": "Unauthorized: insufficient permissions", "code": -8}')
OK = (200, {"users": []})


@pytest.mark.parametrize(
    ("vault", "users", "editor", "can_read", "writes"),
    [
        pytest.param((200, VAULT_PAGE), DENIED_403, DENIED_403, True, (), id="viewer-403"),
        pytest.param((200, VAULT_PAGE), DENIED_401, DENIED_401, True, (), id="viewer-401-8"),
        pytest.param(
            (200, VAULT_PAGE),
            DENIED_403,
            (200, []),
            True,
            ("editor_endpoint:/v1/supported_assets",),
            id="editor",
        ),
        pytest.param(
            (200, VAULT_PAGE),
            OK,
            (200, []),
            True,
            ("list_users (admin)", "editor_endpoint:/v1/supported_assets"),
            id="admin",
        ),
        pytest.param(
            (200, VAULT_PAGE), OK, DENIED_403, True, ("list_users (admin)",), id="users-only"
        ),
        pytest.param(
            (200, VAULT_PAGE),
            (404, {"message": "Not Found"}),
            DENIED_403,
            True,
            ("list_users (admin) (unverified: HTTP 404)",),
            id="unexpected-404",
        ),
        pytest.param(
            (200, VAULT_PAGE),
            DENIED_403,
            (400, {"message": "bad", "code": 1000}),
            True,
            ("editor_endpoint:/v1/supported_assets (unverified: HTTP 400)",),
            id="unexpected-400",
        ),
        pytest.param(
            (200, VAULT_PAGE),
            (302, b""),
            (204, b""),
            True,
            ("list_users (admin) (unverified: HTTP 302)", "editor_endpoint:/v1/supported_assets"),
            id="redirect-and-204",
        ),
        pytest.param(
            (200, VAULT_PAGE),
            (409, {"message": "?"}),
            DENIED_403,
            True,
            ("list_users (admin) (unverified: HTTP 409)",),
            id="unexpected-409",
        ),
        pytest.param(DENIED_403, DENIED_403, DENIED_403, False, (), id="no-vault-read"),
        pytest.param(
            (200, b"<html>maintenance</html>"), DENIED_403, DENIED_403, False, (), id="vault-html"
        ),
        pytest.param((200, {"data": []}), DENIED_403, DENIED_403, False, (), id="vault-shape"),
        pytest.param(
            (404, {"message": "Not Found"}), DENIED_403, DENIED_403, False, (), id="vault-404"
        ),
    ],
)
def test_probe_decision_table(fake_fireblocks, vault, users, editor, can_read, writes):
    client, recorder = fake_fireblocks({VAULT: vault, USERS: users, EDITOR: editor})
    report = client.check_permissions()
    assert report.can_read is can_read
    assert report.write_permissions == writes
    assert report.read_only is (can_read and not writes)
    # Exactly the reference's probes, in order, and nothing but GETs.
    assert recorder.paths == [VAULT, USERS, EDITOR]
    assert {r.method for r in recorder.requests} == {"GET"}
    assert [p["request"] for p in report.reported["probes"]] == [f"GET {p}" for p in recorder.paths]


def test_probe_reports_what_fireblocks_said_and_the_admin_role(fake_fireblocks):
    users = {"users": [{"id": "other", "role": "VIEWER"}, {"id": API_KEY.upper(), "role": "ADMIN"}]}
    client, _ = fake_fireblocks(
        {
            VAULT: (200, VAULT_PAGE, {"X-Request-ID": "r-1"}),
            USERS: (200, users),
            EDITOR: DENIED_401,
        }
    )
    report = client.check_permissions()
    assert report.reported["role"] == "ADMIN"
    probes = report.reported["probes"]
    assert [(p["request"], p["status"], p["code"], p["outcome"]) for p in probes] == [
        (f"GET {VAULT}", 200, None, "allowed"),
        (f"GET {USERS}", 200, None, "allowed"),
        (f"GET {EDITOR}", 401, -8, "denied"),
    ]
    assert [p["request_id"] for p in probes] == ["r-1", None, None]


def test_a_rejected_key_stops_the_probe_with_provider_refused(fake_fireblocks):
    client, recorder = fake_fireblocks({VAULT: (401, b'{"message": "Unauthorized", "code": -7}')})
    with pytest.raises(ProviderRefused) as caught:
        client.check_permissions()
    assert caught.value.message.startswith("Fireblocks rejected the API key: ")
    assert "api.fireblocks.test" in caught.value.message
    assert set(caught.value.details["credentials"]) == {"api_key"}
    assert caught.value.details["fireblocks"]["code"] == -7
    assert recorder.paths == [VAULT]


@pytest.mark.parametrize(
    ("code", "field", "words"),
    [
        (-1, "private_key", "signature does not match"),
        (-2, "api_key", "no API key"),
        (-5, "private_key", "certificate has expired"),
        (-6, "api_key", "does not belong"),
        (-7, "api_key", "unknown"),
        (None, "api_key", "HTTP 401"),
        (-99, "api_key", "code -99"),
    ],
)
def test_auth_codes_become_actionable_refusals(fake_fireblocks, code, field, words):
    body = json.dumps({"message": "Unauthorized", "code": code}).encode() if code else b"nope"
    client, _ = fake_fireblocks({VAULT: (401, body, {"Content-Type": "application/octet-stream"})})
    with pytest.raises(ProviderRefused) as caught:
        client.check_permissions()
    assert words in caught.value.message
    assert words in caught.value.details["credentials"][field]


@pytest.mark.parametrize("code", [-10, -12])
def test_clock_codes_are_our_problem_not_the_key(fake_fireblocks, code):
    client, _ = fake_fireblocks({VAULT: (401, {"message": "Unauthorized", "code": code})})
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert "clock" in caught.value.message
    assert "credentials" not in caught.value.details


def test_auth_failure_on_a_later_probe_also_refuses(fake_fireblocks):
    client, _ = fake_fireblocks(
        {VAULT: (200, VAULT_PAGE), USERS: (401, {"message": "x", "code": -1})}
    )
    with pytest.raises(ProviderRefused):
        client.check_permissions()


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"Retry-After": "17"}, 17),
        ({"Retry-After": "2.2"}, 3),
        ({"Retry-After": "0"}, 1),
        ({}, DEFAULT_RETRY_AFTER_SECONDS),
        ({"Retry-After": "soon"}, DEFAULT_RETRY_AFTER_SECONDS),
    ],
)
def test_429_becomes_rate_limited_honouring_retry_after(fake_fireblocks, header, expected):
    client, _ = fake_fireblocks({VAULT: (429, {"message": "Too many requests"}, header)})
    with pytest.raises(RateLimited) as caught:
        client.check_permissions()
    assert caught.value.retry_after == expected


def test_retry_after_as_an_http_date(fake_fireblocks):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    client, _ = fake_fireblocks({VAULT: (429, b"", {"Retry-After": when})})
    with pytest.raises(RateLimited) as caught:
        client.check_permissions()
    assert 115 <= caught.value.retry_after <= 121


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_becomes_provider_unavailable(fake_fireblocks, status):
    client, _ = fake_fireblocks({VAULT: (200, VAULT_PAGE), USERS: (status, b"upstream")})
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert caught.value.provider == "fireblocks"
    assert f"HTTP {status}" in caught.value.message


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (httpx.ReadTimeout("timed out"), "within 10 s"),
        (httpx.ConnectTimeout("timed out"), "within 10 s"),
        (httpx.ConnectError("refused"), "could not be reached"),
        (httpx.RemoteProtocolError("closed"), "could not be reached"),
    ],
)
def test_transport_failures_become_provider_unavailable(fake_fireblocks, error, words):
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    client, _ = fake_fireblocks({VAULT: fail})
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert words in caught.value.message


def test_default_client_times_out_after_ten_seconds(credentials):
    client = Client(load_settings(fireblocks_url=BASE), credentials)
    assert client._http.timeout == httpx.Timeout(10.0)
    client.close()


def test_get_raises_for_denied_and_unexpected_answers(fake_fireblocks):
    client, _ = fake_fireblocks(
        {
            "/v1/exchange_accounts/paged": DENIED_401,
            "/v1/transactions/x": (404, {"message": "Not found", "code": 1004}),
        }
    )
    with pytest.raises(ProviderRefused) as denied:
        client.get("/v1/exchange_accounts/paged")
    assert "may not call GET /v1/exchange_accounts/paged" in denied.value.message
    with pytest.raises(RequestFailed) as missing:
        client.get("/v1/transactions/x")
    assert (missing.value.status, missing.value.code) == (404, 1004)


@pytest.mark.parametrize("status", [401, 400, 403, 503])
def test_no_secret_in_errors_or_logs_even_when_fireblocks_echoes_them(
    fake_fireblocks, credentials, caplog, status
):
    caplog.set_level("DEBUG")
    pem = credentials.private_key.get_secret_value()
    tokens: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        # A misbehaving server (or proxy) that plants the credentials in its error body.
        tokens.append(request.headers["Authorization"])
        planted = f"{request.headers['Authorization']} {request.headers['X-API-Key']} {pem}"
        return httpx.Response(status, json={"message": planted, "code": -1})

    client, _ = fake_fireblocks({VAULT: echo, "/v1/transactions": echo})
    with pytest.raises((ProviderRefused, ProviderUnavailable, RequestFailed)) as caught:
        if status == 401:
            client.check_permissions()
        else:
            client.get("/v1/transactions")
    # Any 31 characters of the signed part of the token would be a leak (the header is constant).
    signed = tokens[0].split(".", 1)[1]
    windows = [signed[i : i + 24] for i in range(0, len(signed) - 23, 8)] + [signed[-24:]]
    secrets = [API_KEY, *windows, *pem.splitlines()[1:4]]
    shown = "\n".join(
        [
            str(caught.value),
            repr(caught.value.details),
            repr(caught.value.args),
            repr(client),
            caplog.text,
            *(json.dumps(vars(r), default=str) for r in caplog.records),
        ]
    )
    assert caplog.records, "the request should have been logged"
    for secret in secrets:
        assert secret not in shown
