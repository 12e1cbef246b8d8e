"""HTTP function `auth`: email OTP, Google sign-in, refresh and logout (no access token needed)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import functions_framework
from flask import Request
from pydantic import EmailStr, Field
from werkzeug.wrappers import Response

from functions.api.common import client_ip, refresh_cookie
from shared.auth.sessions import COOKIE_NAME
from shared.config import bootstrap
from shared.errors import Gone
from shared.http.envelope import Reply
from shared.http.models import ReplyModel, RequestModel
from shared.http.routing import Call, Router
from shared.services import auth as sessions
from shared.services import google, otp
from shared.services.users import UserReply

runtime = bootstrap()
router = Router("auth")


class OtpRequest(RequestModel):
    email: EmailStr = Field(max_length=320)


class OtpVerify(RequestModel):
    email: EmailStr = Field(max_length=320)
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6-digit code from the email.")


class GoogleStart(RequestModel):
    redirect_uri: str = Field(max_length=2048, description="Must be one of OAUTH_REDIRECT_URIS.")


class GoogleCallback(RequestModel):
    code: str = Field(min_length=1, max_length=4096)
    state: str = Field(min_length=1, max_length=512)


class Accepted(ReplyModel):
    status: Literal["accepted"]


class SignInReply(ReplyModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    user: UserReply


class RefreshReply(ReplyModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    user_id: UUID


class GoogleAuthorization(ReplyModel):
    authorization_url: str
    state: str


class SignedOut(ReplyModel):
    status: Literal["signed_out"]


def _signed_in(call: Call, session: sessions.SignedIn) -> Reply:
    reply = SignInReply(
        access_token=session.access_token,
        token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
        expires_in=session.expires_in,
        user=UserReply.of(session.user),
    )
    return Reply(reply, cookies=[refresh_cookie(call.request, session.refresh_token)])


@router.post(
    "/auth/otp/request",
    "Email a 6-digit sign-in code",
    body=OtpRequest,
    response=Accepted,
    status=202,
    auth=False,
    errors=(429, 503),
)
def request_otp(call: Call) -> Accepted:
    ip = client_ip(call.request, runtime.settings.trusted_proxy_hops)
    otp.request_code(runtime.settings, runtime.mailer, call.body.email, ip)
    return Accepted(status="accepted")


@router.post(
    "/auth/otp/verify",
    "Sign in with an emailed code",
    body=OtpVerify,
    response=SignInReply,
    auth=False,
    errors=(401,),
)
def verify_otp(call: Call) -> Reply:
    return _signed_in(
        call, otp.verify_code(runtime.settings, runtime.tokens, call.body.email, call.body.code)
    )


@router.get(
    "/auth/oauth/google",
    "Start Google sign-in",
    query=GoogleStart,
    response=GoogleAuthorization,
    auth=False,
    errors=(503,),
)
def google_start(call: Call) -> GoogleAuthorization:
    url, state = google.start(runtime.settings, call.query.redirect_uri)
    return GoogleAuthorization(authorization_url=url, state=state)


@router.post(
    "/auth/oauth/google/callback",
    "Finish Google sign-in",
    body=GoogleCallback,
    response=SignInReply,
    auth=False,
    errors=(401, 503),
)
def google_callback(call: Call) -> Reply:
    session = google.finish(runtime.settings, runtime.tokens, call.body.code, call.body.state)
    return _signed_in(call, session)


@router.post(
    "/auth/refresh", "Rotate the refresh cookie", response=RefreshReply, auth=False, errors=(401,)
)
def refresh(call: Call) -> Reply:
    token = call.request.cookies.get(COOKIE_NAME)
    result = sessions.refresh(runtime.settings, runtime.tokens, token)
    reply = RefreshReply(
        access_token=result.access_token,
        token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
        expires_in=result.expires_in,
        user_id=result.user_id,
    )
    return Reply(reply, cookies=[refresh_cookie(call.request, result.refresh_token)])


@router.post(
    "/auth/logout", "Revoke this session and clear the cookie", response=SignedOut, auth=False
)
def logout(call: Call) -> Reply:
    sessions.logout(runtime.settings, call.request.cookies.get(COOKIE_NAME))
    return Reply(SignedOut(status="signed_out"), cookies=[refresh_cookie(call.request, None)])


@router.post("/auth/register", "Retired: use email OTP or Google", auth=False, errors=(410,))
def register(call: Call) -> None:
    raise Gone(
        "password registration is retired: sign in with POST /api/v1/auth/otp/request "
        "or GET /api/v1/auth/oauth/google"
    )


@router.post("/auth/login", "Retired: use email OTP or Google", auth=False, errors=(410,))
def login(call: Call) -> None:
    raise Gone(
        "password login is retired: sign in with POST /api/v1/auth/otp/request "
        "or GET /api/v1/auth/oauth/google"
    )


@functions_framework.http
def auth(request: Request) -> Response:
    return router.dispatch(request)
