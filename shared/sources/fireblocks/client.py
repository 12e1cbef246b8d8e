"""Fireblocks over HTTP: RS256-signed GET requests, error mapping, and the read-only key probe."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import jwt

from shared.config import Settings
from shared.errors import DomainError, ProviderRefused, ProviderUnavailable, RateLimited
from shared.sources.common.base import PermissionReport
from shared.sources.fireblocks.credentials import ApiKeyCredentials, load_rsa_private_key

log = logging.getLogger(__name__)

PROVIDER = "fireblocks"
TIMEOUT_SECONDS = 10.0
# Reference §1.3: the JWT page asks for exp within 30 s of iat while the SDKs use 55 s and the
# server accepts that; 30 s satisfies both readings and leaves room for clock skew.
TOKEN_LIFETIME_SECONDS = 30
# Reference §5: limits are counted per minute and no Retry-After is documented, so a 429 without
# one means "come back next minute".
DEFAULT_RETRY_AFTER_SECONDS = 60
# Reference §1.4: 401 with code -8 is "insufficient permissions", i.e. the role may not call this
# endpoint; it is the probe's "denied" signal, not a bad key.
PERMISSION_DENIED_CODE = -8
# Reference §1.4/§7.11: -10 (expired) and -12 (iat in the future) come from our clock, not from the
# customer's key, so they must not tell the customer to fix their credentials.
CLOCK_CODES = frozenset({-10, -12})

# Reference §1.4: what each auth code means, as the customer can act on it, and which credential
# field it points at (the API layer shows it under `details.credentials`).
_AUTH_REASONS: dict[int, tuple[str, str]] = {
    -1: (
        "private_key",
        "the signature does not match: this private key is not the one whose CSR created the "
        "API user",
    ),
    -2: ("api_key", "the request carried no API key"),
    -3: ("api_key", "the request carried no signed token"),
    -4: ("api_key", "the signed URL did not match the request"),
    -5: (
        "private_key",
        "the token was not accepted; most often the API user's certificate has expired",
    ),
    -6: ("api_key", "the API key does not belong to the user that signed the request"),
    -7: (
        "api_key",
        "the API key is unknown to {host}: check it, and that it comes from the same environment "
        "(production or sandbox, US or EU)",
    ),
}

VAULT_PROBE_PATH = "/v1/vault/accounts_paged"


@dataclass(frozen=True)
class Probe:
    """One GET whose success proves a capability a read-only key must not have."""

    permission: str
    path: str


# Reference §2.3, steps 2 and 3, endpoints exactly as named there (all side-effect-free GETs):
# - api_users answers only Admin and Non-Signing Admin keys (§2.2), which can manage users and
#   initiate transactions;
# - supported_assets answers Editor and above (Signer, Approver, NSA, Admin), roles that can
#   initiate transactions, and not Viewer (§2.3 table, §0.3).
# The alternative step-3 probe (estimate_network_fee?assetId=BTC) is not used: its answer could
# depend on the workspace's assets, and under fail-closed rules a 400 would refuse a Viewer.
# The optional step 4 (audit_logs) is not called either: it only tells read-only roles apart, so
# it cannot change the decision, and every probe costs a request against per-minute limits (§5).
WRITE_PROBES: tuple[Probe, ...] = (
    Probe("list_users (admin)", "/v1/management/api_users"),
    Probe("editor_endpoint:/v1/supported_assets", "/v1/supported_assets"),
)


class RequestFailed(DomainError):
    """Fireblocks answered a GET with an unexpected 4xx (a bug in the request, not the key)."""

    def __init__(self, path: str, status: int, code: int | None, request_id: str | None) -> None:
        suffix = f", code {code}" if code is not None else ""
        super().__init__(
            f"Fireblocks answered GET {path} with HTTP {status}{suffix}",
            {"fireblocks": {"status": status, "code": code, "request_id": request_id}},
        )
        self.status = status
        self.code = code


def body_hash(body: bytes) -> str:
    """The JWT `bodyHash`: hex SHA-256 of exactly the bytes sent (b"" for a GET; §1.3)."""
    return hashlib.sha256(body).hexdigest()


def sign_request(
    api_key: str,
    private_key: Any,
    uri: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> str:
    """The RS256 JWT that authenticates one request (reference §1.3).

    `uri` is the path and query exactly as they go on the wire; `private_key` a loaded RSA key
    (or its PEM)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "uri": uri,
        # UUID4 like the current SDKs: random, so unique per request without shared state.
        "nonce": nonce or str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + TOKEN_LIFETIME_SECONDS,
        "sub": api_key,
        "bodyHash": body_hash(body),
    }
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"typ": "JWT"})


class Client:
    """One customer's Fireblocks API user, GET-only: nothing here can create or change anything."""

    def __init__(
        self,
        settings: Settings,
        credentials: ApiKeyCredentials,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self._base_url = settings.fireblocks_url
        self._api_key = credentials.api_key.get_secret_value()
        self._signing_key = load_rsa_private_key(credentials.private_key.get_secret_value())
        self.key_hint = credentials.key_hint()
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=TIMEOUT_SECONDS)

    def __repr__(self) -> str:
        return f"<fireblocks.Client {self._base_url} key {self.key_hint}>"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """A signed GET of `path` (starting with /v1/); any answer but 2xx raises."""
        response = self._send(path, params)
        if response.is_success:
            return response
        code = _error_code(response)
        request_id = response.headers.get("X-Request-ID")
        if _denied(response.status_code, code):
            reason = f"the API user's role may not call GET {path}"
            raise ProviderRefused(
                f"Fireblocks refused the request: {reason}",
                {
                    "credentials": {"api_key": reason},
                    "fireblocks": _facts(response.status_code, code, request_id),
                },
            )
        raise RequestFailed(path, response.status_code, code, request_id)

    def check_permissions(self) -> PermissionReport:
        """Prove the key read-only with the GET-only, fail-closed probes of reference §2.3.

        There is no "who am I" endpoint (§2.2), so the role is inferred from which documented
        endpoints answer. Anything but a clear answer counts against the key."""
        probes: list[dict[str, Any]] = []

        # Step 1: vault reads are what ingestion needs, and every role from Viewer up has them.
        # A rejected key raises ProviderRefused from _send (401 codes of §1.4).
        vault, outcome = self._probe(VAULT_PROBE_PATH, {"limit": 1}, probes)
        can_read = outcome == "allowed" and _has_accounts(vault)

        # A key that cannot read is refused anyway, but the probes still run so that the report
        # names everything the key could do, in one attempt.
        write_permissions: list[str] = []
        reported: dict[str, Any] = {"probes": probes}
        for probe in WRITE_PROBES:
            response, outcome = self._probe(probe.path, None, probes)
            if outcome == "allowed":
                # §2.3: "Treat any unexpected 200 in step 2/3 as failure" - a 2xx proves the role.
                write_permissions.append(probe.permission)
                if probe.path == "/v1/management/api_users":
                    role = self._own_role(response)
                    if role:
                        reported["role"] = role
            elif outcome == "unexpected":
                # Fail closed (§2.3, PermissionReport): an answer that is neither success nor a
                # permission denial (400, 404, a redirect...) proves nothing, so it counts as the
                # capability being present. The name says why, so the refusal can be explained.
                write_permissions.append(
                    f"{probe.permission} (unverified: HTTP {response.status_code})"
                )

        log.info(
            "fireblocks permission check",
            extra={
                "provider": PROVIDER,
                "key_hint": self.key_hint,
                "can_read": can_read,
                "write_permissions": write_permissions,
            },
        )
        return PermissionReport(can_read, tuple(write_permissions), reported)

    def _probe(
        self, path: str, params: dict[str, Any] | None, probes: list[dict[str, Any]]
    ) -> tuple[httpx.Response, str]:
        """Send one probe and classify its answer: allowed, denied or unexpected."""
        response = self._send(path, params)
        code = _error_code(response) if not response.is_success else None
        if response.is_success:
            outcome = "allowed"
        elif _denied(response.status_code, code):
            outcome = "denied"
        else:
            outcome = "unexpected"
        probes.append(
            {
                "request": f"GET {response.request.url.raw_path.decode('ascii')}",
                "status": response.status_code,
                "code": code,
                "outcome": outcome,
                "request_id": response.headers.get("X-Request-ID"),
            }
        )
        return response, outcome

    def _own_role(self, response: httpx.Response) -> str | None:
        # §2.2: the API key is the API user's id, so an Admin key can find its own role here.
        try:
            users = json.loads(response.content).get("users")
        except (ValueError, AttributeError):
            return None
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and str(user.get("id", "")).lower() == self._api_key.lower():
                role = user.get("role")
                return str(role) if role is not None else None
        return None

    def _send(self, path: str, params: dict[str, Any] | None) -> httpx.Response:
        """Sign and send one GET; raise for everything that is not an answer about the request
        itself (transport failures, 5xx, 429, a rejected key)."""
        if not path.startswith("/v1/"):
            # The token is bound to this host; never sign a URL taken from elsewhere.
            raise ValueError(f"Fireblocks paths start with /v1/, not {path[:20]!r}")
        request = self._http.build_request("GET", self._base_url + path, params=params)
        # Sign what httpx will write on the request line, byte for byte (§1.3 `uri`).
        uri = request.url.raw_path.decode("ascii")
        request.headers["X-API-Key"] = self._api_key
        request.headers["Authorization"] = "Bearer " + sign_request(
            self._api_key, self._signing_key, uri, request.content
        )
        context = {"provider": PROVIDER, "path": request.url.path, "key_hint": self.key_hint}
        started = time.monotonic()
        try:
            response = self._http.send(request)
        except httpx.TimeoutException:
            log.warning("fireblocks request timed out", extra=context)
            raise ProviderUnavailable(
                PROVIDER, f"Fireblocks did not answer within {TIMEOUT_SECONDS:g} s"
            ) from None
        except httpx.TransportError as error:
            log.warning("fireblocks unreachable", extra={**context, "error": type(error).__name__})
            raise ProviderUnavailable(
                PROVIDER, f"Fireblocks could not be reached ({type(error).__name__})"
            ) from None

        status = response.status_code
        request_id = response.headers.get("X-Request-ID")
        # Extra names avoid `code` and `request_id`: the log formatter redacts the first and
        # owns the second (our own request's id).
        context |= {
            "status": status,
            "fireblocks_request_id": request_id,
            "elapsed_ms": round((time.monotonic() - started) * 1000),
        }
        log.debug("fireblocks request", extra=context)

        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            log.warning("fireblocks rate limit", extra={**context, "retry_after": retry_after})
            raise RateLimited(
                f"Fireblocks is rate limiting this API key; retry in {retry_after} s",
                retry_after,
                {"provider": PROVIDER, "fireblocks": _facts(status, None, request_id)},
            )
        if status >= 500:
            log.warning("fireblocks server error", extra=context)
            raise ProviderUnavailable(
                PROVIDER,
                f"Fireblocks answered with a server error (HTTP {status})",
                {"fireblocks": _facts(status, None, request_id)},
            )
        if status == 401:
            code = _error_code(response)
            if code != PERMISSION_DENIED_CODE:
                log.warning(
                    "fireblocks rejected the key", extra={**context, "fireblocks_code": code}
                )
                raise self._rejection(code, request_id)
        return response

    def _rejection(self, code: int | None, request_id: str | None) -> DomainError:
        facts = _facts(401, code, request_id)
        if code in CLOCK_CODES:
            return ProviderUnavailable(
                PROVIDER,
                f"Fireblocks refused the request time (code {code}); our clock may be off",
                {"fireblocks": facts},
            )
        field, reason = _AUTH_REASONS.get(
            code if code is not None else 0,
            ("api_key", f"HTTP 401, code {code}" if code is not None else "HTTP 401"),
        )
        reason = reason.format(host=httpx.URL(self._base_url).host)
        return ProviderRefused(
            f"Fireblocks rejected the API key: {reason}",
            {"credentials": {field: reason}, "fireblocks": facts},
        )


def _facts(status: int, code: int | None, request_id: str | None) -> dict[str, Any]:
    # X-Request-ID is what Fireblocks support asks for (§1.2).
    return {"status": status, "code": code, "request_id": request_id}


def _denied(status: int, code: int | None) -> bool:
    # §1.4: a role without the permission gets 403, or 401 with code -8; which one is [verify],
    # so both mean "denied".
    return status == 403 or (status == 401 and code == PERMISSION_DENIED_CODE)


def _error_code(response: httpx.Response) -> int | None:
    # §1.4: 401 bodies have come as application/octet-stream, so parse whatever the content type.
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def _has_accounts(response: httpx.Response) -> bool:
    # A 2xx that is not the documented page shape (§3.1) is no proof of a working vault read.
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and isinstance(body.get("accounts"), list)


def _retry_after(value: str | None) -> int:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), at least 1."""
    if not value or not value.strip():
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_SECONDS
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(1, math.ceil(seconds))
