"""A Fireblocks API stand-in: requests authenticated as strictly as Fireblocks does; role profiles.

Every request must carry `X-API-Key` of a registered API user and an RS256 JWT signed with that
user's key whose claims match the request (reference §1.3): `sub` is the key, `uri` the path and
query exactly as received, `bodyHash` the SHA-256 of the body (for a bodiless request the legacy
SDKs' hash of `""` is accepted too), `exp - iat` at most 55 s, not expired, `iat` not in the future,
`nonce` never reused. Failures answer like Fireblocks (§1.4): HTTP 401, body `{"message", "code"}`,
served as application/octet-stream. Codes for checks the reference does not document are inferred:
a wrong bodyHash answers -1 (the body is part of what is signed), a reused nonce or an over-long
lifetime -5 (token not accepted as formed).

Profiles (`add_key(profile)`): roles `viewer` (vault reads only), `editor`, `signer`, `approver`
(also the Editor-level endpoints), `non_signing_admin` and `admin` (also user management), per the
permission table of §2.3; faults `rejected` (401, code -7), `rate_limited` (429 + Retry-After) and
`server_error` (503). A denied endpoint answers 403 with code -8, or 401 with -8 when built with
`denied_status=401` (which of the two Fireblocks sends is an open point of §1.4).

    python -m infra.simulators.fireblocks --port 8091 --key viewer --key editor
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

from infra.simulators.serving import RunningSimulator, bind, start

MAX_TOKEN_LIFETIME_SECONDS = 55
# Clock skew tolerated on `iat`, so a client a second ahead is not refused with -12.
CLOCK_SKEW_SECONDS = 5
DEFAULT_RETRY_AFTER_SECONDS = 7
EMPTY_BODY_HASHES = (
    hashlib.sha256(b"").hexdigest(),
    # The legacy SDKs hash the two-character JSON string "" for bodiless requests (§1.3).
    hashlib.sha256(b'""').hexdigest(),
)

READ, EDITOR, ADMIN = "read", "editor", "admin"
# Reference §2.3: which documented GETs each role reaches.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({READ}),
    "editor": frozenset({READ, EDITOR}),
    "signer": frozenset({READ, EDITOR}),
    "approver": frozenset({READ, EDITOR}),
    "non_signing_admin": frozenset({READ, EDITOR, ADMIN}),
    "admin": frozenset({READ, EDITOR, ADMIN}),
}
FAULT_PROFILES = frozenset({"rejected", "rate_limited", "server_error"})
PROFILES = frozenset(ROLE_PERMISSIONS) | FAULT_PROFILES
# How `GET /v1/management/api_users` names roles (the SDK's UserRole values).
_ROLE_NAMES = {
    "viewer": "VIEWER",
    "editor": "EDITOR",
    "signer": "SIGNER",
    "approver": "APPROVER",
    "non_signing_admin": "NON_SIGNING_ADMIN",
    "admin": "ADMIN",
}

# A tiny, fixed workspace (§3.1 shapes; amounts are decimal strings in whole units).
VAULT_ACCOUNTS: tuple[dict[str, Any], ...] = (
    {
        "id": "0",
        "name": "Treasury",
        "hiddenOnUI": False,
        "autoFuel": False,
        "tags": [],
        "assets": [
            {
                "id": "BTC",
                "total": "1.25",
                "balance": "1.25",
                "available": "1.25",
                "pending": "0",
                "frozen": "0",
                "lockedAmount": "0",
                "staked": "0",
                "blockHeight": "850000",
                "blockHash": "00000000000000000002a7c4c1e48d76c5a37902165a270156b7a8d72728a054",
            },
            {
                "id": "ETH",
                "total": "10.5",
                "balance": "10.5",
                "available": "10.5",
                "pending": "0",
                "frozen": "0",
                "lockedAmount": "0",
                "staked": "0",
                "blockHeight": "19500000",
                "blockHash": "0x4b0f6e0bb1dd3d0f4bd8a7b6b41d3c1e4f2a7e1c9d8b6a5f4e3d2c1b0a998877",
            },
        ],
    },
    {
        "id": "1",
        "name": "Operations",
        "hiddenOnUI": False,
        "autoFuel": True,
        "tags": [],
        "assets": [
            {
                "id": "USDT_ERC20",
                "total": "2500.5",
                "balance": "2500.5",
                "available": "2400.5",
                "pending": "0",
                "frozen": "0",
                "lockedAmount": "100",
                "staked": "0",
                "blockHeight": "19500000",
                "blockHash": "0x4b0f6e0bb1dd3d0f4bd8a7b6b41d3c1e4f2a7e1c9d8b6a5f4e3d2c1b0a998877",
            }
        ],
    },
)
SUPPORTED_ASSETS: tuple[dict[str, Any], ...] = (
    {
        "id": "BTC",
        "name": "Bitcoin",
        "type": "BASE_ASSET",
        "contractAddress": "",
        "nativeAsset": "BTC",
        "decimals": 8,
    },
    {
        "id": "ETH",
        "name": "Ethereum",
        "type": "BASE_ASSET",
        "contractAddress": "",
        "nativeAsset": "ETH",
        "decimals": 18,
    },
    {
        "id": "USDT_ERC20",
        "name": "Tether USD (Ethereum)",
        "type": "ERC20",
        "contractAddress": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "nativeAsset": "ETH",
        "decimals": 6,
    },
)


@dataclass(frozen=True)
class ApiUser:
    """A registered API user: its key (UUID), profile and the public key of its CSR."""

    api_key: str
    profile: str
    name: str
    public_key: rsa.RSAPublicKey


@dataclass(frozen=True)
class RecordedRequest:
    """What a test may assert about traffic: method, path+query as received, answer."""

    method: str
    uri: str
    api_key: str
    status: int
    code: int | None


class _Refusal(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers)
    return response


def _error(status: int, code: int | None, message: str, **headers: str) -> Response:
    body: dict[str, Any] = {"message": message}
    if code is not None:
        body["code"] = code
    response = _json(body, status, **headers)
    if status == 401:
        # §1.4: Fireblocks has been seen serving 401 bodies as octet-stream; clients must cope.
        response.mimetype = "application/octet-stream"
    return response


def _unauthorized(code: int, message: str) -> _Refusal:
    return _Refusal(_error(401, code, f"Unauthorized: {message}"))


def generate_private_key_pem(bits: int = 2048) -> str:
    """A fresh RSA private key in PKCS#8 PEM, like `openssl req -newkey rsa:N -nodes` writes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


class FireblocksSimulator:
    """The API as a WSGI app; thread-safe, so one instance can serve a whole test module."""

    def __init__(
        self,
        *,
        denied_status: int = 403,
        retry_after: int = DEFAULT_RETRY_AFTER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if denied_status not in (401, 403):
            raise ValueError("denied_status is 401 (code -8) or 403")
        self.denied_status = denied_status
        self.retry_after = retry_after
        self._clock = clock
        self._users: dict[str, ApiUser] = {}
        # (api key, nonce) -> exp: a nonce is remembered as long as its token could be replayed.
        self._nonces: dict[tuple[str, str], int] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[str, Callable[[Request], Response]]] = {
            "/v1/vault/accounts_paged": (READ, self._vault_accounts_paged),
            "/v1/management/api_users": (ADMIN, self._api_users),
            "/v1/supported_assets": (EDITOR, self._supported_assets),
        }

    def add_key(
        self, profile: str, *, private_key_pem: str | None = None, name: str | None = None
    ) -> tuple[str, str]:
        """Register an API user with `profile`; return (api key, private key PEM).

        A new RSA-2048 key is generated unless `private_key_pem` is given (tests reuse one to
        save key generation time)."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; one of {sorted(PROFILES)}")
        pem = private_key_pem or generate_private_key_pem()
        private_key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("Fireblocks API users sign with RSA keys")
        api_key = str(uuid.uuid4())
        user = ApiUser(api_key, profile, name or f"{profile} api user", private_key.public_key())
        with self._lock:
            self._users[api_key] = user
        return api_key, pem

    def set_profile(self, api_key: str, profile: str) -> None:
        """Change an API user's role, as a workspace admin would in the console."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; one of {sorted(PROFILES)}")
        with self._lock:
            self._users[api_key] = dataclasses.replace(self._users[api_key], profile=profile)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        uri = _raw_uri(environ)
        try:
            response = self._handle(request, uri)
        except _Refusal as refusal:
            response = refusal.response
        response.headers["X-Request-ID"] = str(uuid.uuid4())
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    request.method,
                    uri,
                    request.headers.get("X-API-Key", ""),
                    response.status_code,
                    _code_of(response),
                )
            )
        return response(environ, start_response)

    def _handle(self, request: Request, uri: str) -> Response:
        user = self._user(request)
        if user.profile == "server_error":
            # An outage answers before authentication, as a load balancer would.
            return _error(503, None, "Service Unavailable")
        if user.profile == "rejected":
            raise _unauthorized(-7, "Token is not accepted")
        self._authenticate(request, uri, user)
        if user.profile == "rate_limited":
            return _error(429, None, "Too many requests", **{"Retry-After": str(self.retry_after)})
        route = self._routes.get(request.path)
        if route is None:
            return _error(404, None, "Not Found")
        if request.method != "GET":
            return _error(405, None, "Method Not Allowed", Allow="GET")
        permission, handler = route
        if permission not in ROLE_PERMISSIONS[user.profile]:
            return _error(self.denied_status, -8, "Insufficient permissions")
        return handler(request)

    def _user(self, request: Request) -> ApiUser:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            raise _unauthorized(-3, "JWT is missing")
        with self._lock:
            user = self._users.get(request.headers.get("X-API-Key", ""))
        if user is None:
            raise _unauthorized(-7, "Token is not accepted")
        return user

    def _authenticate(self, request: Request, uri: str, user: ApiUser) -> None:
        token = request.headers["Authorization"].removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(
                token,
                user.public_key,
                algorithms=["RS256"],
                # Only the signature here; every claim is checked below with Fireblocks' codes.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _unauthorized(-1, "Invalid signature") from None
        except jwt.InvalidTokenError:
            raise _unauthorized(-5, "Invalid token format") from None

        subject = claims.get("sub")
        if not subject:
            raise _unauthorized(-2, "API key is missing in the JWT")
        if subject != user.api_key:
            raise _unauthorized(-6, "Wrong user in the JWT")
        if claims.get("uri") != uri:
            raise _unauthorized(-4, "Wrong URL in the JWT")
        body = request.get_data(cache=True)
        accepted = EMPTY_BODY_HASHES if not body else (hashlib.sha256(body).hexdigest(),)
        if claims.get("bodyHash") not in accepted:
            raise _unauthorized(-1, "Invalid signature: body hash does not match")

        issued, expires = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (issued, expires)):
            raise _unauthorized(-5, "Invalid token format: iat and exp must be integers")
        if not 0 < expires - issued <= MAX_TOKEN_LIFETIME_SECONDS:
            raise _unauthorized(-5, "Invalid token format: exp must be within 55 s of iat")
        now = self._clock()
        if expires < now:
            raise _unauthorized(-10, "Request expired")
        if issued > now + CLOCK_SKEW_SECONDS:
            raise _unauthorized(-12, "iat is in the future")

        nonce = claims.get("nonce")
        if nonce is None or nonce == "":
            raise _unauthorized(-5, "Invalid token format: nonce is missing")
        with self._lock:
            self._nonces = {k: exp for k, exp in self._nonces.items() if exp >= now}
            if (user.api_key, str(nonce)) in self._nonces:
                raise _unauthorized(-5, "Invalid token format: nonce already used")
            self._nonces[(user.api_key, str(nonce))] = expires

    def _vault_accounts_paged(self, request: Request) -> Response:
        try:
            limit = int(request.args.get("limit", "200"))
            start = int(request.args.get("after", "0"))
        except ValueError:
            return _error(400, 1000, "Invalid GetVaultAccounts values")
        if not 1 <= limit <= 500 or start < 0:
            return _error(400, 1000, "Invalid GetVaultAccounts values")
        accounts = list(VAULT_ACCOUNTS[start : start + limit])
        paging: dict[str, str] = {}
        if start + limit < len(VAULT_ACCOUNTS):
            paging["after"] = str(start + limit)
        if start > 0:
            paging["before"] = str(max(0, start - limit))
        return _json({"accounts": accounts, "paging": paging})

    def _api_users(self, request: Request) -> Response:
        with self._lock:
            users = list(self._users.values())
        return _json(
            {
                "users": [
                    {
                        "id": user.api_key,
                        "name": user.name,
                        "role": _ROLE_NAMES.get(user.profile, "VIEWER"),
                        "enabled": True,
                        "status": "APPROVED",
                        "userType": "API",
                    }
                    for user in users
                ]
            }
        )

    def _supported_assets(self, request: Request) -> Response:
        return _json(list(SUPPORTED_ASSETS))


def _raw_uri(environ: dict[str, Any]) -> str:
    # The request line as received (werkzeug's server sets RAW_URI); the JWT must match it.
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = environ.get("QUERY_STRING", "")
    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    return path + (f"?{query}" if query else "")


def _code_of(response: Response) -> int | None:
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def serve(
    simulator: FireblocksSimulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve `simulator` (a new one if None) on host:port (0: a free port); `url` is the host
    root, what FIREBLOCKS_URL takes."""
    simulator = simulator or FireblocksSimulator()
    server, url = bind(simulator, host, port)
    return start(simulator, server, url, "fireblocks")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.simulators.fireblocks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--key",
        action="append",
        choices=sorted(PROFILES),
        help="register an API user with this profile (repeatable; default: one viewer)",
    )
    parser.add_argument(
        "--keys-dir", type=Path, help="where to write each key's PEM (default: a temporary dir)"
    )
    parser.add_argument("--denied-status", type=int, choices=(401, 403), default=403)
    args = parser.parse_args(argv)
    simulator = FireblocksSimulator(denied_status=args.denied_status)
    running = serve(simulator, args.host, args.port)
    keys_dir = args.keys_dir or Path(tempfile.mkdtemp(prefix="fireblocks-sim-"))
    keys_dir.mkdir(parents=True, exist_ok=True)
    print(f"fireblocks simulator: FIREBLOCKS_URL={running.url}", flush=True)
    for profile in args.key or ["viewer"]:
        api_key, pem = simulator.add_key(profile)
        pem_path = keys_dir / f"{api_key}.pem"
        pem_path.touch(mode=0o600)
        pem_path.write_text(pem)
        print(f"  {profile}: api_key={api_key} private_key={pem_path}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
