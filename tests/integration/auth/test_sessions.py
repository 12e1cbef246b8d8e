"""Sessions through the `auth` and `users` functions: rotation, reuse, logout, bad tokens."""

from __future__ import annotations

import logging

import jwt
import pytest
from sqlalchemy import select

from shared.db.models import RefreshToken
from tests.conftest import function_client

COOKIE = "coinfrs_refresh"


@pytest.fixture
def auth():
    return function_client("auth")


@pytest.fixture
def users():
    return function_client("users")


def _refresh(auth, token):
    auth.set_cookie(COOKIE, token, domain="localhost", path="/api/v1/auth")
    response = auth.post("/api/v1/auth/refresh")
    auth.delete_cookie(COOKIE, domain="localhost", path="/api/v1/auth")
    return response


def _new_cookie(response) -> str:
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE))
    return cookie.split(";", 1)[0].split("=", 1)[1]


def test_refresh_rotates_the_cookie(auth, users, sign_in_user):
    alice = sign_in_user()
    response = _refresh(auth, alice.refresh_token)
    body = response.get_json()
    assert response.status_code == 200
    assert body["data"]["token_type"] == "Bearer" and body["data"]["expires_in"] == 900
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/api/v1/auth" in cookie
    rotated = _new_cookie(response)
    assert rotated != alice.refresh_token
    headers = {"Authorization": f"Bearer {body['data']['access_token']}"}
    assert users.get("/api/v1/users/me", headers=headers).get_json()["data"]["id"] == str(alice.id)
    assert _refresh(auth, rotated).status_code == 200


def test_reusing_a_refresh_token_revokes_its_family(auth, sign_in_user, engine):
    alice = sign_in_user()
    second = _new_cookie(_refresh(auth, alice.refresh_token))
    replay = _refresh(auth, alice.refresh_token)
    assert replay.status_code == 401
    assert replay.get_json()["error"]["code"] == "AUTHENTICATION_ERROR"
    # The thief's copy and the legitimate successor are both dead now.
    assert _refresh(auth, second).status_code == 401
    with engine.connect() as connection:
        revoked = (
            connection.execute(
                select(RefreshToken.revoked_at).where(RefreshToken.user_id == alice.id)
            )
            .scalars()
            .all()
        )
    assert len(revoked) == 2 and all(revoked)
    # Another session of the same user is untouched.
    other = sign_in_user(alice.email)
    assert _refresh(auth, other.refresh_token).status_code == 200


def test_logout_revokes_and_clears_the_cookie(auth, sign_in_user):
    alice = sign_in_user()
    auth.set_cookie(COOKIE, alice.refresh_token, domain="localhost", path="/api/v1/auth")
    response = auth.post("/api/v1/auth/logout")
    assert response.status_code == 200
    cleared = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE))
    assert "Max-Age=0" in cleared or "expires=Thu, 01 Jan 1970" in cleared
    assert _refresh(auth, alice.refresh_token).status_code == 401
    # Logging out without a cookie is harmless.
    auth.delete_cookie(COOKIE, domain="localhost", path="/api/v1/auth")
    assert auth.post("/api/v1/auth/logout").status_code == 200


def test_refresh_without_or_with_a_bogus_cookie(auth):
    assert auth.post("/api/v1/auth/refresh").status_code == 401
    assert _refresh(auth, "made-up-token").status_code == 401


def test_cookie_is_secure_except_on_plain_http_localhost(auth, sign_in_user):
    alice = sign_in_user()
    auth.set_cookie(COOKIE, alice.refresh_token, domain="api.coinfrs.test", path="/api/v1/auth")
    response = auth.post("/api/v1/auth/refresh", base_url="https://api.coinfrs.test")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE))
    assert "Secure" in cookie
    local = _refresh(auth, _new_cookie(response))
    assert "Secure" not in next(
        h for h in local.headers.getlist("Set-Cookie") if h.startswith(COOKIE)
    )


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "Bearer " + jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256"),
    ],
)
def test_bad_authorization_headers_are_401(users, header):
    response = users.get("/api/v1/users/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "AUTHENTICATION_ERROR"


def test_a_deleted_user_token_is_refused(users, sign_in_user, engine):
    from sqlalchemy import func, update

    from shared.db.models import User

    alice = sign_in_user()
    with engine.begin() as connection:
        connection.execute(update(User).where(User.id == alice.id).values(deleted_at=func.now()))
    assert users.get("/api/v1/users/me", headers=alice.headers).status_code == 401


def test_deprecated_routes_answer_410(auth):
    for path in ("/api/v1/auth/register", "/api/v1/auth/login"):
        response = auth.post(path, json={"data": {}})
        body = response.get_json()
        assert response.status_code == 410
        assert body["error"]["code"] == "NOT_FOUND"
        assert "/auth/otp/request" in body["error"]["message"]
        assert "/auth/oauth/google" in body["error"]["message"]


def test_no_token_reaches_the_logs(auth, users, sign_in_user, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    alice = sign_in_user()
    rotated = _refresh(auth, alice.refresh_token)
    access = rotated.get_json()["data"]["access_token"]
    users.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
    _refresh(auth, alice.refresh_token)  # reuse
    logged = caplog.text + capsys.readouterr().out
    for secret in (alice.refresh_token, alice.access_token, access, _new_cookie(rotated)):
        assert secret not in logged
