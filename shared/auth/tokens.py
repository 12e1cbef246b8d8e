"""Access tokens: short-lived HS256 JWTs with a key id, verified strictly."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from shared.auth.keys import derive, key_id
from shared.errors import AuthenticationFailed

ISSUER = "coinfrs"
AUDIENCE = "coinfrs-api"
ALGORITHM = "HS256"
ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
_REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    token_id: str
    expires_at: datetime


class TokenSigner:
    """Signs with the current key; verifies with the current key or a previous one (rotation)."""

    def __init__(self, secret_key: str, previous_keys: list[str] | tuple[str, ...] = ()) -> None:
        self._signing = derive(secret_key, "access-token")
        self._kid = key_id(self._signing)
        self._verifying = {
            key_id(key): key
            for key in [self._signing, *(derive(k, "access-token") for k in previous_keys)]
        }

    def issue(self, user_id: uuid.UUID, now: datetime | None = None) -> tuple[str, int]:
        """A new access token for `user_id` and its lifetime in seconds."""
        now = now or datetime.now(UTC)
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "iat": int(now.timestamp()),
            "exp": int((now + ACCESS_TOKEN_LIFETIME).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._signing, algorithm=ALGORITHM, headers={"kid": self._kid})
        return token, int(ACCESS_TOKEN_LIFETIME.total_seconds())

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; anything else is AuthenticationFailed (never why in detail
        to the caller beyond a short reason, and never the token itself)."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._verifying.get(header.get("kid", ""))
            if key is None or header.get("alg") != ALGORITHM:
                raise AuthenticationFailed("access token is not valid")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": _REQUIRED},
            )
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                token_id=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("access token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise AuthenticationFailed("access token is not valid") from None
