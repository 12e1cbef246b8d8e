"""Access tokens: only a well-formed HS256 token of ours, unexpired, for our audience, passes."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth.keys import derive, key_id
from shared.auth.tokens import AUDIENCE, ISSUER, TokenSigner
from shared.errors import AuthenticationFailed

SECRET = "unit-secret-" + "s" * 32
USER = uuid.UUID("11111111-2222-4333-8444-555555555555")


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(SECRET)


def _claims(**overrides):
    now = datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(USER),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
        "jti": "j1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _forge(claims, key=None, alg="HS256", kid=None):
    key = key or derive(SECRET, "access-token")
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid or key_id(key)})


def test_issued_tokens_verify_with_the_expected_claims(signer):
    token, lifetime = signer.issue(USER)
    claims = signer.verify(token)
    assert claims.user_id == USER and lifetime == 900
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "aud", "sub", "exp", "iat", "jti"} <= set(payload)
    assert payload["exp"] - payload["iat"] == 900


def test_tampered_signature(signer):
    token, _ = signer.issue(USER)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(AuthenticationFailed):
        signer.verify(f"{head}.{body}.{flipped}")


def test_tampered_payload(signer):
    token, _ = signer.issue(USER)
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["sub"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    with pytest.raises(AuthenticationFailed):
        signer.verify(f"{head}.{forged}.{signature}")


def test_alg_none_is_refused(signer):
    header = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"alg": "none", "typ": "JWT", "kid": key_id(derive(SECRET, "access-token"))}
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).decode().rstrip("=")
    with pytest.raises(AuthenticationFailed):
        signer.verify(f"{header}.{body}.")


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_another_algorithm_is_refused(signer):
    key = derive(SECRET, "access-token")
    with pytest.raises(AuthenticationFailed):
        signer.verify(_forge(_claims(), key=key, alg="HS512"))


def test_expired(signer):
    past = datetime.now(UTC) - timedelta(hours=1)
    token = _forge(_claims(iat=int(past.timestamp()), exp=int(past.timestamp()) + 60))
    with pytest.raises(AuthenticationFailed, match="expired"):
        signer.verify(token)


@pytest.mark.parametrize(
    "overrides", [{"aud": "someone-else"}, {"iss": "evil"}, {"jti": None}, {"sub": "not-a-uuid"}]
)
def test_wrong_or_missing_claims(signer, overrides):
    with pytest.raises(AuthenticationFailed):
        signer.verify(_forge(_claims(**overrides)))


def test_another_key_or_unknown_kid(signer):
    with pytest.raises(AuthenticationFailed):
        signer.verify(_forge(_claims(), key=derive("other-" + "k" * 40, "access-token")))
    with pytest.raises(AuthenticationFailed):
        signer.verify(_forge(_claims(), kid="unknown"))


def test_rotation_keeps_old_tokens_valid_until_they_expire():
    old = TokenSigner("old-secret-" + "o" * 32)
    token, _ = old.issue(USER)
    rotated = TokenSigner(SECRET, previous_keys=["old-secret-" + "o" * 32])
    assert rotated.verify(token).user_id == USER
    with pytest.raises(AuthenticationFailed):
        TokenSigner(SECRET).verify(token)
