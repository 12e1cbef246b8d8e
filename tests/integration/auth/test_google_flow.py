"""Google sign-in end to end: the `auth` function, real PostgreSQL, the OIDC simulator over HTTP."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, text

from infra.simulators.google_oidc import GoogleOidcSimulator
from shared.auth.keys import derive, keyed_hash
from shared.config import get_settings
from shared.db.engine import unit_of_work
from shared.db.models import OAuthState, User, UserIdentity
from shared.observability import CloudLoggingFormatter
from tests.conftest import function_client
from tests.integration.auth import google_fixtures
from tests.integration.auth.google_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    unused_port,
)

# The fixtures of google_fixtures, made visible to pytest in this module.
google_oidc_server = google_fixtures.google_oidc_server
google_oidc = google_fixtures.google_oidc
google_configured = google_fixtures.google_configured

START = "/api/v1/auth/oauth/google"
CALLBACK = "/api/v1/auth/oauth/google/callback"
COOKIE = "coinfrs_refresh"


@pytest.fixture
def auth(google_configured):
    return function_client("auth")


@pytest.fixture
def users():
    return function_client("users")


@dataclass
class Consent:
    """What the browser brings back from Google: the code and the state."""

    code: str
    state: str


def start(auth) -> tuple[str, str]:
    response = auth.get(START, query_string={"redirect_uri": REDIRECT_URI})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    return data["authorization_url"], data["state"]


def consent(authorization_url: str) -> Consent:
    """Follow the authorization URL as a browser would, up to the redirect back to us."""
    response = httpx.get(authorization_url, follow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    return Consent(query["code"][0], query["state"][0])


def callback(auth, code: str, state: str):
    return auth.post(CALLBACK, json={"data": {"code": code, "state": state}})


def sign_in_with_google(auth):
    url, state = start(auth)
    given = consent(url)
    assert given.state == state
    return callback(auth, given.code, given.state)


def error_of(response) -> dict[str, Any]:
    return response.get_json()["error"]


def users_with(email: str) -> int:
    with unit_of_work() as db:
        return db.execute(
            select(func.count()).select_from(User).where(User.email == email)
        ).scalar()


def google_identities(subject: str) -> list[UserIdentity]:
    with unit_of_work() as db:
        return list(
            db.execute(
                select(UserIdentity).where(
                    UserIdentity.provider == "google", UserIdentity.subject == subject
                )
            ).scalars()
        )


def state_row(state: str) -> OAuthState | None:
    state_hash = keyed_hash(derive(get_settings().secret_key, "oauth-state"), state)
    with unit_of_work() as db:
        return db.execute(select(OAuthState).where(OAuthState.state_hash == state_hash)).scalar()


# --- happy path ----------------------------------------------------------------------------------


def test_start_binds_state_pkce_and_nonce_server_side(auth):
    url, state = start(auth)
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["scope"] == "openid email profile"
    assert query["state"] == state
    assert query["code_challenge_method"] == "S256"
    assert query["prompt"] == "select_account"
    row = state_row(state)
    assert row is not None and row.consumed_at is None
    # Stored hashed; the verifier and nonce stay with us and only the challenge travels.
    assert row.state_hash != state
    assert row.nonce == query["nonce"]
    assert 43 <= len(row.code_verifier) <= 128 and row.code_verifier not in url
    assert row.redirect_uri == REDIRECT_URI


def test_first_google_sign_in_creates_the_user_and_a_session(auth, users, google_oidc):
    response = sign_in_with_google(auth)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["token_type"] == "Bearer" and data["expires_in"] == 900
    email = google_oidc.identity.email  # the fixture's fresh account
    assert data["user"]["email"] == email
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "Path=/api/v1/auth" in cookie
    me = users.get("/api/v1/users/me", headers={"Authorization": f"Bearer {data['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["data"]["id"] == data["user"]["id"]
    [identity] = google_identities(google_oidc.identity.sub)
    assert str(identity.user_id) == data["user"]["id"]


def test_signing_in_again_is_the_same_user(auth, google_oidc):
    first = sign_in_with_google(auth).get_json()["data"]
    second = sign_in_with_google(auth).get_json()["data"]
    assert second["user"]["id"] == first["user"]["id"]
    assert second["access_token"] != first["access_token"]
    assert users_with(first["user"]["email"]) == 1
    assert len(google_identities(google_oidc.identity.sub)) == 1


def test_a_user_from_otp_with_the_same_email_is_reused(auth, google_oidc):
    from functions.api.auth import runtime
    from shared.services.auth import sign_in

    email = f"otp-{secrets.token_hex(5)}@coinfrs.test"
    with unit_of_work() as db:
        existing = sign_in(db, runtime.settings, runtime.tokens, email).user
    # Google spells the address its own way; it is still the same person.
    google_oidc.set_identity(email.upper())
    response = sign_in_with_google(auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["user"]["id"] == str(existing.id)
    assert users_with(email) == 1
    [identity] = google_identities(google_oidc.identity.sub)
    assert identity.user_id == existing.id


def test_a_rotated_google_key_is_fetched_on_first_sight(auth, google_oidc):
    assert sign_in_with_google(auth).status_code == 200  # the JWKS is now cached
    google_oidc.rotate_key()
    response = sign_in_with_google(auth)
    assert response.status_code == 200, response.get_json()


# --- state ---------------------------------------------------------------------------------------


def test_an_unknown_state_is_refused(auth):
    url, _ = start(auth)
    given = consent(url)
    response = callback(auth, given.code, secrets.token_urlsafe(32))
    assert response.status_code == 401
    assert error_of(response) == {
        "code": "AUTHENTICATION_ERROR",
        "message": "sign-in expired or was already used; start again",
        "details": {},
    }


def test_a_state_works_once(auth):
    url, state = start(auth)
    given = consent(url)
    assert callback(auth, given.code, state).status_code == 200
    replay = callback(auth, given.code, state)
    assert replay.status_code == 401
    assert error_of(replay)["message"] == "sign-in expired or was already used; start again"


def test_a_state_is_spent_even_when_the_sign_in_fails(auth):
    url, state = start(auth)
    given = consent(url)
    assert callback(auth, "4/0not-the-code", state).status_code == 401
    retry = callback(auth, given.code, state)
    assert retry.status_code == 401
    assert error_of(retry)["message"] == "sign-in expired or was already used; start again"
    assert state_row(state).consumed_at is not None


def test_an_expired_state_is_refused(auth, google_oidc):
    url, state = start(auth)
    given = consent(url)
    state_hash = state_row(state).state_hash
    with unit_of_work() as db:
        db.execute(
            text(
                "UPDATE canonical.oauth_states SET expires_at = now() - interval '1 second' "
                "WHERE state_hash = :state_hash"
            ),
            {"state_hash": state_hash},
        )
    response = callback(auth, given.code, state)
    assert response.status_code == 401
    assert users_with(google_oidc.identity.email) == 0


def test_a_code_google_refuses_is_401(auth, google_oidc):
    url, state = start(auth)
    consent(url)
    response = callback(auth, "4/0forged-code", state)
    assert response.status_code == 401
    assert error_of(response)["details"] == {"provider_error": "invalid_grant"}
    assert users_with(google_oidc.identity.email) == 0


# --- the id_token --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else.apps.googleusercontent.com"}, "the id_token's aud is not valid"),
        ({"azp": "someone-else.apps.googleusercontent.com"}, "the id_token's azp is not valid"),
        ({"iss": "https://accounts.example.com"}, "the id_token's iss is not valid"),
        ({"exp_offset_seconds": -120}, "the id_token has expired"),
        ({"email_verified": False}, "Google has not verified this email address"),
        ({"sign_with_other_key": True}, "the id_token signature is not valid"),
        ({"alg": "RS512"}, "the id_token is not signed with RS256"),
        ({"alg": "HS256"}, "the id_token is not signed with RS256"),
        ({"alg": "none"}, "the id_token is not signed with RS256"),
        ({"nonce": "a-nonce-from-another-sign-in"}, "the id_token's nonce is not valid"),
        ({"kid": "a-key-google-never-published"}, "the id_token is signed by an unknown key"),
        ({"omit": ["iat"]}, "the id_token lacks iat"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_a_bad_id_token_is_refused_and_creates_no_user(auth, google_oidc, overrides, reason):
    google_oidc.next_token(**overrides)
    response = sign_in_with_google(auth)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "AUTHENTICATION_ERROR"
    assert error["details"] == {"reason": reason}
    assert users_with(google_oidc.identity.email) == 0
    assert google_identities(google_oidc.identity.sub) == []


def test_the_control_api_bends_the_next_token_only(auth, google_oidc, google_oidc_server):
    control = httpx.post(
        f"{google_oidc_server.url}/_control/next_token", json={"aud": "other"}, timeout=5
    )
    assert control.status_code == 200
    assert sign_in_with_google(auth).status_code == 401
    assert sign_in_with_google(auth).status_code == 200
    refused = httpx.post(
        f"{google_oidc_server.url}/_control/next_token", json={"audience": "x"}, timeout=5
    )
    assert refused.status_code == 400


# --- configuration and availability ------------------------------------------------------------


def test_a_redirect_uri_off_the_allow_list_is_422(auth):
    response = auth.get(START, query_string={"redirect_uri": "https://evil.example/callback"})
    assert response.status_code == 422
    assert "redirect_uri" in error_of(response)["details"]


def test_unconfigured_google_is_503(auth, google_configured):
    url, state = start(auth)
    given = consent(url)
    google_configured(GOOGLE_CLIENT_ID=None, GOOGLE_CLIENT_SECRET=None)
    response = auth.get(START, query_string={"redirect_uri": REDIRECT_URI})
    assert response.status_code == 503
    assert error_of(response)["message"] == "Google sign-in is not configured"
    assert error_of(response)["details"]["dependency"] == "google"
    assert callback(auth, given.code, state).status_code == 503
    # A forged callback is refused as such, configured or not.
    assert callback(auth, given.code, secrets.token_urlsafe(32)).status_code == 401


def test_unreachable_discovery_is_503(auth, google_configured):
    google_configured(
        GOOGLE_DISCOVERY_URL=f"http://127.0.0.1:{unused_port()}/.well-known/openid-configuration"
    )
    response = auth.get(START, query_string={"redirect_uri": REDIRECT_URI})
    assert response.status_code == 503
    assert error_of(response)["details"]["dependency"] == "google"


@pytest.mark.parametrize("path", ["/oauth2/v3/certs", "/no-such-document"])
def test_a_malformed_or_missing_discovery_document_is_503(
    auth, google_configured, google_oidc_server, path
):
    google_configured(GOOGLE_DISCOVERY_URL=google_oidc_server.url + path)
    response = auth.get(START, query_string={"redirect_uri": REDIRECT_URI})
    assert response.status_code == 503
    assert error_of(response)["details"]["dependency"] == "google"


def test_no_secret_reaches_the_logs(auth, google_oidc, google_oidc_server, caplog, capsys):
    from functions.api.auth import runtime

    caplog.set_level(logging.DEBUG)
    url, state = start(auth)
    given = consent(url)
    verifier = state_row(state).code_verifier
    signed_in = callback(auth, given.code, state)
    assert signed_in.status_code == 200
    google_oidc.next_token(sign_with_other_key=True)
    url, state = start(auth)
    refused = consent(url)
    assert callback(auth, refused.code, state).status_code == 401
    secrets_seen = [
        given.code,
        refused.code,
        verifier,
        CLIENT_SECRET,
        runtime.settings.secret_key,
        signed_in.get_json()["data"]["access_token"],
        *(
            cookie.split(";")[0].split("=", 1)[1]
            for cookie in signed_in.headers.getlist("Set-Cookie")
        ),
    ]
    for issued in google_oidc.issued:
        secrets_seen += [issued["access_token"], issued["id_token"]]
    # The id_token's signature alone would be enough to spot a leak of a truncated token.
    secrets_seen += [token.rsplit(".", 1)[1] for token in secrets_seen if token.count(".") == 2]
    formatter = CloudLoggingFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    captured = capsys.readouterr()
    assert "google_sign_in" in logged and "google_sign_in_refused" in logged  # logging did happen
    for secret in secrets_seen:
        assert secret not in logged
        assert secret not in caplog.text
        assert secret not in captured.out + captured.err


def test_the_simulator_refuses_what_google_refuses(google_oidc_server):
    """The stand-in is only worth its tests if it is as strict as Google."""
    simulator: GoogleOidcSimulator = google_oidc_server.simulator
    base = google_oidc_server.url
    authorize = f"{base}/o/oauth2/v2/auth"
    good = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email",
        "state": "s",
        "nonce": "n",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    assert httpx.get(authorize, params={**good, "client_id": "x"}).status_code == 401
    mismatch = httpx.get(authorize, params={**good, "redirect_uri": "https://evil.example/"})
    assert mismatch.json()["error"] == "redirect_uri_mismatch"
    plain = httpx.get(authorize, params={**good, "code_challenge_method": "plain"})
    assert "error=invalid_request" in plain.headers["Location"]
    code = parse_qs(urlsplit(httpx.get(authorize, params=good).headers["Location"]).query)["code"][
        0
    ]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    }
    wrong_secret = httpx.post(f"{base}/token", data={**form, "client_secret": "nope"})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    wrong_verifier = httpx.post(f"{base}/token", data={**form, "code_verifier": "v" * 43})
    assert wrong_verifier.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid code verifier.",
    }
    # The failed redemption spent the code: the right verifier comes too late.
    assert httpx.post(f"{base}/token", data=form).json()["error"] == "invalid_grant"
    code = parse_qs(urlsplit(httpx.get(authorize, params=good).headers["Location"]).query)["code"][
        0
    ]
    basic = httpx.post(
        f"{base}/token",
        data={k: v for k, v in {**form, "code": code}.items() if not k.startswith("client_")},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert basic.status_code == 200 and basic.json()["token_type"] == "Bearer"
    assert simulator.keys[0].kid in httpx.get(f"{base}/oauth2/v3/certs").text
