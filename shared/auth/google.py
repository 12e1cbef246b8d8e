"""Google as an OpenID Connect provider: discovery, PKCE, code exchange, strict id_token checks.

Authlib (the token request), joserfc (JWS/JWT) and httpx are imported inside the functions that need
them: together they cost ~0.2 s, which the `auth` cold start should not pay for OTP or refresh.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from shared.errors import AuthenticationFailed, DependencyUnavailable

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

logger = logging.getLogger(__name__)

DEPENDENCY = "google"
HTTP_TIMEOUT_SECONDS = 10.0
DISCOVERY_TTL_SECONDS = 3600.0
JWKS_TTL_SECONDS = 3600.0
# Clock skew tolerated on `exp` and `iat` (OIDC Core §3.1.3.7 leaves it to the client; keep small).
LEEWAY_SECONDS = 60
ALGORITHM = "RS256"
SCOPE = "openid email profile"
# Google documents that its id_tokens carry either spelling of its issuer.
_ISSUER_ALIASES = {"https://accounts.google.com": ("accounts.google.com",)}


@dataclass(frozen=True)
class Provider:
    """The parts of a discovery document the code flow needs."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class GoogleAccount:
    """Who Google says signed in: the stable `sub` and a verified email address."""

    subject: str
    email: str


class _TtlCache:
    """A per-process cache of provider documents (Cloud Functions instances are reused)."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] > self._ttl:
            return None
        return entry[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_discovery_cache = _TtlCache(DISCOVERY_TTL_SECONDS)
_jwks_cache = _TtlCache(JWKS_TTL_SECONDS)


def clear_caches() -> None:
    """Forget cached discovery documents and signing keys (tests, or after reconfiguration)."""
    _discovery_cache.clear()
    _jwks_cache.clear()


def _get_json(url: str, what: str) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(
            url, timeout=HTTP_TIMEOUT_SECONDS, headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as error:
        logger.warning(
            "google %s unreachable",
            what,
            extra={"event": "google_unreachable", "document": what, "error": type(error).__name__},
        )
        raise DependencyUnavailable(DEPENDENCY, f"Google's {what} could not be reached") from None
    if response.status_code != 200:
        raise DependencyUnavailable(
            DEPENDENCY, f"Google's {what} answered HTTP {response.status_code}"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DependencyUnavailable(DEPENDENCY, f"Google's {what} is not a JSON object")
    return body


def discover(url: str) -> Provider:
    """The provider described by the discovery document at `url` (cached for an hour)."""
    cached = _discovery_cache.get(url)
    if cached is not None:
        return cached
    body = _get_json(url, "discovery document")
    values = {name: body.get(name) for name in Provider.__dataclass_fields__}
    if not all(isinstance(value, str) and value for value in values.values()):
        missing = sorted(name for name, value in values.items() if not isinstance(value, str))
        raise DependencyUnavailable(
            DEPENDENCY, "Google's discovery document is malformed", {"missing": missing}
        )
    provider = Provider(**values)
    _discovery_cache.put(url, provider)
    return provider


def new_code_verifier() -> str:
    """A PKCE code verifier: 86 URL-safe characters (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of `verifier`."""
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    return create_s256_code_challenge(verifier)


def authorization_url(
    provider: Provider,
    client_id: str,
    redirect_uri: str,
    state: str,
    nonce: str,
    challenge: str,
) -> str:
    """Where the browser goes to sign in with Google (code flow, PKCE S256, account chooser)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "select_account",
        }
    )
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return f"{provider.authorization_endpoint}{separator}{query}"


def _oauth2_client() -> Any:
    # Imported first: it installs an "always" filter that would otherwise win over ours below.
    import authlib.deprecate

    with warnings.catch_warnings():
        # Authlib prefers httpx2 and warns when it falls back to httpx, which we pin on purpose.
        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client
    return OAuth2Client


def exchange_code(
    provider: Provider,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> str:
    """Redeem an authorization code (with its PKCE verifier) for the id_token."""
    import httpx
    from authlib.integrations.base_client import OAuthError

    client_class = _oauth2_client()
    with client_class(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
        timeout=HTTP_TIMEOUT_SECONDS,
    ) as client:
        try:
            token = client.fetch_token(
                provider.token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
        except OAuthError as error:
            # Only Google's error code is kept: its description may quote the request.
            logger.info(
                "google refused the code",
                extra={"event": "google_code_refused", "provider_error": error.error},
            )
            if error.error in ("invalid_client", "unauthorized_client"):
                raise DependencyUnavailable(
                    DEPENDENCY, "Google refused Coinfrs' client credentials"
                ) from None
            raise AuthenticationFailed(
                "Google did not accept the sign-in code; start again",
                {"provider_error": error.error},
            ) from None
        except httpx.HTTPError as error:
            logger.warning(
                "google token endpoint unreachable",
                extra={"event": "google_unreachable", "error": type(error).__name__},
            )
            raise DependencyUnavailable(
                DEPENDENCY, "Google's token endpoint could not be reached"
            ) from None
        except ValueError:
            raise DependencyUnavailable(
                DEPENDENCY, "Google's token endpoint did not answer JSON"
            ) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise AuthenticationFailed("Google returned no id_token; start again")
    return id_token


def _rejected(reason: str) -> AuthenticationFailed:
    # The reason is for the user and the log; the token itself is never quoted.
    return AuthenticationFailed(f"Google sign-in was rejected: {reason}", {"reason": reason})


def _signing_keys(jwks_uri: str, refresh: bool = False) -> KeySet:
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    keys = None if refresh else _jwks_cache.get(jwks_uri)
    if keys is None:
        body = _get_json(jwks_uri, "signing keys")
        try:
            keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
        except (JoseError, KeyError, TypeError, ValueError):
            raise DependencyUnavailable(DEPENDENCY, "Google's signing keys are malformed") from None
        _jwks_cache.put(jwks_uri, keys)
    return keys


def issuers_of(provider: Provider) -> tuple[str, ...]:
    """The `iss` values an id_token of `provider` may carry."""
    return (provider.issuer, *_ISSUER_ALIASES.get(provider.issuer, ()))


def verify_id_token(provider: Provider, id_token: str, client_id: str, nonce: str) -> GoogleAccount:
    """The account an id_token vouches for, after every check of OIDC Core §3.1.3.7."""
    from joserfc import jws
    from joserfc.errors import JoseError

    try:
        header = jws.extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise _rejected("the id_token is malformed") from None
    keys = _signing_keys(provider.jwks_uri)
    if header.get("kid") not in {key.kid for key in keys}:
        # Google rotates its keys; a kid we have not seen yet means our copy is stale.
        keys = _signing_keys(provider.jwks_uri, refresh=True)
    return check_id_token(id_token, keys, issuers_of(provider), client_id, nonce)


def check_id_token(
    id_token: str,
    keys: KeySet,
    issuers: Iterable[str],
    client_id: str,
    nonce: str,
    now: float | None = None,
) -> GoogleAccount:
    """Verify `id_token` against `keys` and the expected claims (no network: unit-testable)."""
    from joserfc import jwt
    from joserfc.errors import (
        BadSignatureError,
        ClaimError,
        ExpiredTokenError,
        InvalidKeyIdError,
        JoseError,
        MissingClaimError,
        UnsupportedAlgorithmError,
    )

    try:
        # RS256 only, as Google signs: refuses `none` and HS256 keyed with a public key.
        token = jwt.decode(id_token, keys, algorithms=[ALGORITHM])
    except UnsupportedAlgorithmError:
        raise _rejected("the id_token is not signed with RS256") from None
    except InvalidKeyIdError:
        raise _rejected("the id_token is signed by an unknown key") from None
    except BadSignatureError:
        raise _rejected("the id_token signature is not valid") from None
    except (JoseError, ValueError, UnicodeError):
        raise _rejected("the id_token is malformed") from None
    essential = {"essential": True}
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "values": list(issuers)},
        aud={"essential": True, "value": client_id},
        sub=essential,
        exp=essential,
        iat=essential,
        nonce={"essential": True, "value": nonce},
        email=essential,
    )
    claims = token.claims
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _rejected("the id_token has expired") from None
    except MissingClaimError as error:
        raise _rejected(f"the id_token lacks {error.claim}") from None
    except ClaimError as error:
        raise _rejected(f"the id_token's {error.claim} is not valid") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # OIDC Core §3.1.3.7 (4, 5): several audiences need azp, and azp must be us.
    if len(audiences) > 1 and "azp" not in claims:
        raise _rejected("the id_token lacks azp")
    if "azp" in claims and claims["azp"] != client_id:
        raise _rejected("the id_token's azp is not valid")
    if claims.get("email_verified") is not True:
        raise _rejected("Google has not verified this email address")
    if not isinstance(claims["email"], str):
        raise _rejected("the id_token's email is not valid")
    return GoogleAccount(subject=claims["sub"], email=claims["email"])
