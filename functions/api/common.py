"""What every HTTP function shares: the signed-in router, the caller's IP, the session cookie."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from werkzeug.wrappers import Request

from shared.auth.sessions import COOKIE_NAME, COOKIE_PATH, REFRESH_TOKEN_LIFETIME
from shared.config import Runtime
from shared.errors import NotFound
from shared.http.models import ReplyModel
from shared.http.routing import Call, Router
from shared.services import auth


def signed_in_router(group: str, runtime: Runtime) -> Router:
    """A router whose routes (unless `auth=False`) need a valid access token of a live user."""

    def authenticate(request: Request) -> auth.CurrentUser:
        return auth.current_user(runtime.tokens, request.headers.get("Authorization"))

    return Router(group, authenticator=authenticate)


def client_ip(request: Request, trusted_hops: int) -> str:
    """The caller's address: the socket peer, or the entry our own proxies appended to
    X-Forwarded-For (anything further left was written by the client and proves nothing)."""
    candidate = request.remote_addr or "unknown"
    if trusted_hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        if len(forwarded) >= trusted_hops and forwarded[-trusted_hops]:
            candidate = forwarded[-trusted_hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return "unknown"


def refresh_cookie(request: Request, token: str | None) -> tuple[str, str | None, dict[str, Any]]:
    """The refresh-token cookie (None deletes it): httpOnly, SameSite=Strict, scoped to /auth,
    Secure everywhere but plain-http localhost, where browsers would otherwise drop it."""
    local_http = request.scheme == "http" and request.host.split(":")[0] in (
        "127.0.0.1",
        "localhost",
        "[::1]",
    )
    options: dict[str, Any] = {
        "path": COOKIE_PATH,
        "httponly": True,
        "samesite": "Strict",
        "secure": not local_http,
    }
    if token is not None:
        options["max_age"] = int(REFRESH_TOKEN_LIFETIME.total_seconds())
    return COOKIE_NAME, token, options


def uuid_path(call: Call, name: str = "id") -> uuid.UUID:
    """A path id; one that is not a UUID names no resource (404, like another user's)."""
    try:
        return uuid.UUID(call.path[name])
    except ValueError:
        raise NotFound("no such resource") from None


class AccountReply(ReplyModel):
    """CONTRACT.md `account`: type, the Binance sub-account email, the key telling apart accounts
    of one type (isolated-margin symbol, Fireblocks vault id)."""

    type: str
    sub_account: str | None
    key: str | None
