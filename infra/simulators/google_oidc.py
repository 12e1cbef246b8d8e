"""A Google OIDC provider stand-in: discovery, auto-consent authorize, token, JWKS, test controls.

It speaks the subset of Google's OpenID Connect that Coinfrs uses (authorization code flow with
PKCE S256 and a nonce) as strictly as Google does, and answers errors the way Google does
(`{"error": "invalid_grant", ...}` with 400). `POST /_control/identity` picks who signs in next;
`POST /_control/next_token` bends the next id_token (wrong audience, expired, unverified email,
another key, another alg) so tests can prove each check of the client.

    python -m infra.simulators.google_oidc --port 8090
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from infra.simulators.serving import RunningSimulator, bind, start

DEFAULT_CLIENT_ID = "coinfrs-local.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "GOCSPX-local-simulator-secret"
DEFAULT_EMAIL = "finance@coinfrs.local"
CODE_LIFETIME_SECONDS = 60
TOKEN_LIFETIME_SECONDS = 3600
# What `next_token` may bend; anything else is refused so a typo in a test cannot pass silently.
TOKEN_OVERRIDES = frozenset(
    {
        "aud",
        "azp",
        "iss",
        "exp_offset_seconds",
        "email_verified",
        "nonce",
        "sign_with_other_key",
        "alg",
        "kid",
        "omit",
    }
)
_RSA_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def subject_for(email: str) -> str:
    """Google's `sub` for an address here: 21 digits, stable across runs (tests compare them)."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return "1" + str(int(digest, 16))[:20]


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class Identity:
    """Who signs in at the authorize step (auto-consent: there is no login page)."""

    email: str
    sub: str = ""
    email_verified: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.sub:
            object.__setattr__(self, "sub", subject_for(self.email))


class SigningKey:
    """An RSA-2048 key with a `kid`, made fresh for each simulator (Google rotates its own)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private.public_key().public_numbers()
        self.n, self.e = _int_b64url(numbers.n), _int_b64url(numbers.e)
        self.kid = hashlib.sha256(f"{self.e}.{self.n}".encode()).hexdigest()[:40]

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, alg: str, data: bytes) -> bytes:
        """A JWS signature with `alg`; HS256 is keyed with the public PEM (the alg-confusion attack
        a client must refuse) and `none` is unsigned."""
        if alg == "none":
            return b""
        if alg == "HS256":
            return hmac.new(self.public_pem(), data, hashlib.sha256).digest()
        family, bits = alg[:2], alg[2:]
        if bits not in _RSA_HASHES or family not in ("RS", "PS"):
            raise ValueError(f"unsupported alg {alg!r}")
        digest = _RSA_HASHES[bits]()
        if family == "RS":
            return self.private.sign(data, padding.PKCS1v15(), digest)
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return self.private.sign(data, pss, digest)


@dataclass(frozen=True)
class _Grant:
    """An authorization code waiting to be redeemed."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    scope: str
    identity: Identity
    issued_at: float


@dataclass
class _State:
    identity: Identity
    overrides: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, Identity] = field(default_factory=dict)
    issued: list[dict[str, Any]] = field(default_factory=list)


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status, mimetype="application/json", headers=headers)


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return _json(
        {"error": error, "error_description": description}, status, **{"Cache-Control": "no-store"}
    )


class GoogleOidcSimulator:
    """The provider as a WSGI app; thread-safe, so one instance can serve a whole test session."""

    def __init__(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        redirect_uris: list[str] | None = None,
        identity: Identity | None = None,
        issuer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # None accepts any http(s) redirect_uri (the local stack); Google itself needs a list.
        self.redirect_uris = redirect_uris
        # None: the base URL the request came to (set by serve() to the served address).
        self.issuer = issuer
        self.clock = clock
        self.default_identity = identity or Identity(DEFAULT_EMAIL)
        self.keys = [SigningKey()]
        self._other_key: SigningKey | None = None
        self._lock = threading.Lock()
        self._state = _State(identity=self.default_identity)
        self._routes = Map(
            [
                Rule("/.well-known/openid-configuration", endpoint="discovery", methods=["GET"]),
                Rule("/o/oauth2/v2/auth", endpoint="authorize", methods=["GET", "POST"]),
                Rule("/token", endpoint="token", methods=["POST"]),
                Rule("/oauth2/v3/certs", endpoint="certs", methods=["GET"]),
                Rule("/v1/userinfo", endpoint="userinfo", methods=["GET", "POST"]),
                Rule("/_control/identity", endpoint="control_identity", methods=["POST"]),
                Rule("/_control/next_token", endpoint="control_next_token", methods=["POST"]),
                Rule("/_control/reset", endpoint="control_reset", methods=["POST"]),
            ]
        )

    # --- controls (Python side; the /_control routes call these) ----------------------------

    def set_identity(
        self,
        email: str,
        sub: str | None = None,
        email_verified: bool = True,
        name: str | None = None,
    ) -> Identity:
        """Who signs in from now on."""
        identity = Identity(email, sub or "", email_verified, name)
        with self._lock:
            self._state.identity = identity
        return identity

    def next_token(self, **overrides: Any) -> None:
        """Bend the next id_token only: `aud`, `azp`, `iss`, `exp_offset_seconds` (from now),
        `email_verified`, `nonce`, `sign_with_other_key`, `alg` (RS256 RS384 RS512 PS256 HS256
        none), `kid`, `omit` (claim names to leave out)."""
        unknown = set(overrides) - TOKEN_OVERRIDES
        if unknown:
            raise ValueError(f"unknown id_token overrides: {sorted(unknown)}")
        with self._lock:
            self._state.overrides = dict(overrides)

    def reset(self) -> None:
        """Back to the default identity, no pending override, no outstanding code or token."""
        with self._lock:
            self._state = _State(identity=self.default_identity)

    def rotate_key(self) -> SigningKey:
        """Sign with a new key from now on; the JWKS publishes it first and keeps the old one."""
        key = SigningKey()
        with self._lock:
            self.keys = [key, *self.keys[:1]]
        return key

    @property
    def identity(self) -> Identity:
        """Who signs in next."""
        with self._lock:
            return self._state.identity

    @property
    def issued(self) -> list[dict[str, Any]]:
        """Every token response handed out (tests check none of it reaches a log)."""
        with self._lock:
            return list(self._state.issued)

    def id_token(
        self,
        audience: str,
        nonce: str,
        identity: Identity | None = None,
        issuer: str = "",
        access_token: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> str:
        """An id_token as the token endpoint would mint it (also for unit tests, without HTTP)."""
        overrides = overrides or {}
        unknown = set(overrides) - TOKEN_OVERRIDES
        if unknown:
            raise ValueError(f"unknown id_token overrides: {sorted(unknown)}")
        if identity is None:
            with self._lock:
                identity = self._state.identity
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": overrides.get("iss", issuer or self.issuer or ""),
            "azp": overrides.get("azp", audience),
            "aud": overrides.get("aud", audience),
            "sub": identity.sub,
            "email": identity.email,
            "email_verified": overrides.get("email_verified", identity.email_verified),
            "nonce": overrides.get("nonce", nonce),
            "iat": now,
            "exp": now + int(overrides.get("exp_offset_seconds", TOKEN_LIFETIME_SECONDS)),
        }
        if access_token:
            claims["at_hash"] = _b64url(hashlib.sha256(access_token.encode()).digest()[:16])
        if identity.name:
            claims["name"] = identity.name
        for name in overrides.get("omit", ()):
            claims.pop(name, None)
        if overrides.get("sign_with_other_key"):
            if self._other_key is None:
                self._other_key = SigningKey()
            signer = self._other_key
        else:
            signer = self.keys[0]
        alg = overrides.get("alg", "RS256")
        # The published kid even when signing with the other key: the signature, not the key
        # lookup, is what must fail.
        header = {"alg": alg, "kid": overrides.get("kid", self.keys[0].kid), "typ": "JWT"}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = signer.sign(alg, signing_input.encode("ascii"))
        return f"{signing_input}.{_b64url(signature)}"

    # --- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            endpoint, _ = self._routes.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request)
        except MethodNotAllowed as error:
            response = error.get_response()
        except NotFound:
            response = _json({"error": "not_found"}, 404)
        except HTTPException as error:
            response = error.get_response()
        return response(environ, start_response)

    def _base(self, request: Request) -> str:
        return self.issuer or request.host_url.rstrip("/")

    def _discovery(self, request: Request) -> Response:
        base = self._base(request)
        return _json(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/v1/userinfo",
                "jwks_uri": f"{base}/oauth2/v3/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "claims_supported": [
                    "aud",
                    "email",
                    "email_verified",
                    "exp",
                    "iat",
                    "iss",
                    "name",
                    "sub",
                ],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code"],
            }
        )

    def _certs(self, request: Request) -> Response:
        with self._lock:
            keys = [key.jwk() for key in self.keys]
        return _json({"keys": keys}, **{"Cache-Control": "public, max-age=3600"})

    def _authorize(self, request: Request) -> Response:
        params = request.values
        if params.get("client_id") != self.client_id:
            return _oauth_error("invalid_client", "The OAuth client was not found.", 401)
        redirect_uri = params.get("redirect_uri", "")
        allowed = (
            redirect_uri in self.redirect_uris
            if self.redirect_uris is not None
            else redirect_uri.startswith(("http://", "https://"))
        )
        if not allowed:
            return _oauth_error(
                "redirect_uri_mismatch",
                "The redirect URI in the request does not match the ones authorized for the "
                "OAuth client.",
            )
        state = params.get("state", "")
        scope = params.get("scope", "")
        problem = None
        if params.get("response_type") != "code":
            problem = ("unsupported_response_type", "Only response_type=code is supported.")
        elif "openid" not in scope.split():
            problem = ("invalid_scope", "The scope must include openid.")
        elif not state:
            problem = ("invalid_request", "Missing required parameter: state")
        elif not params.get("nonce"):
            problem = ("invalid_request", "Missing required parameter: nonce")
        elif params.get("code_challenge_method") != "S256":
            problem = ("invalid_request", "code_challenge_method must be S256.")
        elif not _CHALLENGE.match(params.get("code_challenge", "")):
            problem = ("invalid_request", "Invalid code_challenge.")
        if problem is not None:
            error, description = problem
            reply = {"error": error, "error_description": description}
            if state:
                reply["state"] = state
            return self._redirect(redirect_uri, reply)
        code = "4/0" + secrets.token_urlsafe(48)
        with self._lock:
            self._state.grants[code] = _Grant(
                client_id=self.client_id,
                redirect_uri=redirect_uri,
                code_challenge=params["code_challenge"],
                nonce=params["nonce"],
                scope=scope,
                identity=self._state.identity,
                issued_at=self.clock(),
            )
        return self._redirect(
            redirect_uri, {"code": code, "state": state, "scope": scope, "authuser": "0"}
        )

    @staticmethod
    def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
        separator = "&" if "?" in redirect_uri else "?"
        return Response(
            status=302, headers={"Location": redirect_uri + separator + urlencode(params)}
        )

    def _client_credentials(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except ValueError:
                return "", ""
            client_id, _, client_secret = decoded.partition(":")
            # RFC 6749 §2.3.1: both halves are form-urlencoded before the Basic encoding.
            return unquote(client_id.replace("+", " ")), unquote(client_secret.replace("+", " "))
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def _token(self, request: Request) -> Response:
        client_id, client_secret = self._client_credentials(request)
        if client_id != self.client_id or not hmac.compare_digest(
            client_secret.encode(), self.client_secret.encode()
        ):
            return _oauth_error("invalid_client", "Unauthorized", 401)
        form = request.form
        if form.get("grant_type") != "authorization_code":
            return _oauth_error(
                "unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", "")
            )
        with self._lock:
            # A code is spent by its first presentation, whatever the outcome (single use).
            grant = self._state.grants.pop(form.get("code", ""), None)
        if grant is None or self.clock() - grant.issued_at > CODE_LIFETIME_SECONDS:
            return _oauth_error("invalid_grant", "Bad Request")
        if grant.client_id != client_id:
            return _oauth_error("invalid_grant", "Bad Request")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error("redirect_uri_mismatch", "Bad Request")
        verifier = form.get("code_verifier")
        if not verifier:
            return _oauth_error("invalid_grant", "Missing code verifier.")
        if not _VERIFIER.match(verifier) or not hmac.compare_digest(
            s256(verifier), grant.code_challenge
        ):
            return _oauth_error("invalid_grant", "Invalid code verifier.")
        access_token = "ya29.a0" + secrets.token_urlsafe(64)
        with self._lock:
            # Overrides bend one id_token: taken by the token that uses them.
            overrides, self._state.overrides = self._state.overrides, {}
            self._state.access_tokens[access_token] = grant.identity
        id_token = self.id_token(
            client_id,
            grant.nonce,
            identity=grant.identity,
            issuer=self._base(request),
            access_token=access_token,
            overrides=overrides,
        )
        body = {
            "access_token": access_token,
            "expires_in": TOKEN_LIFETIME_SECONDS - 1,
            "scope": grant.scope,
            "token_type": "Bearer",
            "id_token": id_token,
        }
        with self._lock:
            self._state.issued.append(body)
        return _json(body, **{"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            identity = self._state.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if identity is None:
            return _json(
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                401,
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        info = {
            "sub": identity.sub,
            "email": identity.email,
            "email_verified": identity.email_verified,
        }
        if identity.name:
            info["name"] = identity.name
        return _json(info)

    def _control_identity(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            return _json({"error": "email is required"}, 400)
        unknown = set(body) - {"email", "sub", "email_verified", "name"}
        if unknown:
            return _json({"error": f"unknown fields: {sorted(unknown)}"}, 400)
        identity = self.set_identity(
            body["email"], body.get("sub"), bool(body.get("email_verified", True)), body.get("name")
        )
        return _json({"email": identity.email, "sub": identity.sub})

    def _control_next_token(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _json({"error": "a JSON object of overrides is required"}, 400)
        try:
            self.next_token(**body)
        except ValueError as error:
            return _json({"error": str(error)}, 400)
        return _json({"next_token": body})

    def _control_reset(self, request: Request) -> Response:
        self.reset()
        return _json({"reset": True})


def serve(
    simulator: GoogleOidcSimulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve `simulator` (a new default one if None) on host:port (0: a free port)."""
    simulator = simulator or GoogleOidcSimulator()
    server, url = bind(simulator, host, port)
    if simulator.issuer is None:
        simulator.issuer = url
    return start(simulator, server, url, "google-oidc")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.simulators.google_oidc")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri", action="append", help="allowed redirect URI (repeatable; default: any)"
    )
    parser.add_argument("--email", default=DEFAULT_EMAIL, help="who signs in until changed")
    args = parser.parse_args(argv)
    simulator = GoogleOidcSimulator(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
        identity=Identity(args.email),
    )
    running = serve(simulator, args.host, args.port)
    print(
        f"google oidc simulator: {running.discovery_url} (client_id {args.client_id})", flush=True
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
