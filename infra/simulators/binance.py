"""A Binance REST stand-in that checks API keys, signatures and timestamps as strictly as Binance.

Keys are registered with a profile: what GET /sapi/v1/account/apiRestrictions reports for them
(`read_only`, `trading`, `withdrawals`, ...) or the fault every request carrying them meets
(`rejected`, `rate_limited`, `banned`, `server_error`). Signed requests are checked like Binance
does: `X-MBX-APIKEY`, the payload = query string + body exactly as sent (percent-encoded),
HMAC-SHA256 hex or Ed25519 base64, `signature` last, `timestamp` within `recvWindow` of the
server clock (skewed with `server_time_offset_ms` to provoke -1021). Errors are Binance's bodies,
`{"code": -1022, "msg": "..."}`, with Binance's HTTP statuses.

    python -m infra.simulators.binance --port 8091
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import random
import signal
import string
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

# What apiRestrictions reports for a key nobody granted anything (reference §2's fields).
READ_ONLY_RESTRICTIONS: dict[str, Any] = {
    "ipRestrict": False,
    "enableReading": True,
    "enableSpotAndMarginTrading": False,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "permitsUniversalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "enableVanillaOptions": False,
    "enablePortfolioMarginTrading": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
}
# Profile -> how its keys differ from READ_ONLY_RESTRICTIONS.
PROFILES: dict[str, dict[str, Any]] = {
    "read_only": {},
    "trading": {
        "enableSpotAndMarginTrading": True,
        "tradingAuthorityExpirationTime": 1_893_456_000_000,
    },
    # Binance grants withdrawals only to IP-restricted keys.
    "withdrawals": {"enableWithdrawals": True, "ipRestrict": True},
    "internal_transfer": {"enableInternalTransfer": True},
    "universal_transfer": {"permitsUniversalTransfer": True},
    "futures": {"enableFutures": True},
    "unknown_future_flag": {"enableQuantumTrading": True},
    "no_reading": {"enableReading": False},
}


@dataclass(frozen=True)
class Fault:
    """What every request presenting a faulty key gets, instead of an answer."""

    status: int
    code: int
    msg: str
    retry_after: int | None = None
    # -2015 needs a signed endpoint (Binance checks keys there); the others hit any request.
    signed_only: bool = False


FAULTS: dict[str, Fault] = {
    "rejected": Fault(401, -2015, "Invalid API-key, IP, or permissions for action.", None, True),
    "rate_limited": Fault(
        429,
        -1003,
        "Too many requests; current limit of IP(127.0.0.1) request weight is 6000 per minute. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        retry_after=7,
    ),
    "banned": Fault(
        418,
        -1003,
        "Way too much request weight used; IP banned until {until}. Please use WebSocket "
        "Streams for live updates to avoid bans.",
        retry_after=120,
    ),
    "server_error": Fault(503, -1001, "Internal error; unable to process your request."),
}

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
# Binance's keys are 64 alphanumerics; anything else is "API-key format invalid" (-2014).
_KEY_ALPHABET = string.ascii_letters + string.digits


class BinanceError(Exception):
    """A Binance error answer: HTTP status, code, message (and Retry-After when rate limiting)."""

    def __init__(self, status: int, code: int, msg: str, retry_after: int | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.retry_after = status, code, msg, retry_after

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return _json({"code": self.code, "msg": self.msg}, self.status, headers)


def _invalid_signature() -> BinanceError:
    return BinanceError(400, -1022, "Signature for this request is not valid.")


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        400,
        -1102,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


@dataclass
class ApiKey:
    """One registered key: its profile, and the secret (HMAC) or public key (Ed25519)."""

    api_key: str
    profile: str
    secret: str | None = None
    public_key: Ed25519PublicKey | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    create_time: int = 0

    def restrictions(self) -> dict[str, Any]:
        return {
            **READ_ONLY_RESTRICTIONS,
            "createTime": self.create_time,
            **PROFILES[self.profile],
            **self.flags,
        }

    def verify(self, payload: str, signature: str) -> bool:
        if self.secret is not None:
            expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            # Binance: the hex signature is case-insensitive.
            return hmac.compare_digest(expected.encode(), signature.lower().encode())
        assert self.public_key is not None
        try:
            self.public_key.verify(base64.b64decode(signature, validate=True), payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


class BinanceSimulator:
    """Binance as a WSGI app; thread-safe, so one instance can serve a whole test session."""

    def __init__(self, seed: int | str = 0) -> None:
        self._random = random.Random(f"binance-simulator:{seed}")
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        # Added to the real clock for serverTime and the timestamp check (ms).
        self.server_time_offset_ms = 0
        # (method, path) of every request served, in order, for tests to assert on.
        self.requests: list[tuple[str, str]] = []
        self._routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/api/v3/ping"): lambda _request: _json({}),
            ("GET", "/api/v3/time"): lambda _request: _json({"serverTime": self.server_time_ms()}),
            ("GET", "/sapi/v1/account/apiRestrictions"): self._api_restrictions,
        }
        self._signed_paths = {"/sapi/v1/account/apiRestrictions"}

    # -- test controls ------------------------------------------------------------------------

    def server_time_ms(self) -> int:
        return int(time.time() * 1000) + self.server_time_offset_ms

    def add_hmac_key(
        self,
        profile: str = "read_only",
        *,
        api_key: str | None = None,
        secret: str | None = None,
        flags: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Register an HMAC key (deterministic from the seed unless given); (api_key, secret)."""
        with self._lock:
            api_key = api_key or self._random_key()
            secret = secret or self._random_key()
            self._register(ApiKey(api_key, profile, secret=secret, flags=dict(flags or {})))
        return api_key, secret

    def add_ed25519_key(
        self,
        profile: str = "read_only",
        *,
        api_key: str | None = None,
        flags: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Register an Ed25519 key (deterministic from the seed); (api_key, private key PEM)."""
        with self._lock:
            api_key = api_key or self._random_key()
            private = Ed25519PrivateKey.from_private_bytes(self._random.randbytes(32))
            self._register(
                ApiKey(api_key, profile, public_key=private.public_key(), flags=dict(flags or {}))
            )
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return api_key, pem.decode("ascii")

    def set_profile(self, api_key: str, profile: str) -> None:
        """Change what a registered key may do, as a user editing it in Binance's console would."""
        with self._lock:
            self._register(dataclasses.replace(self._keys[api_key], profile=profile))

    def reset(self) -> None:
        """Forget the served requests and the clock skew (keys stay registered)."""
        with self._lock:
            self.server_time_offset_ms = 0
            self.requests.clear()

    def _random_key(self) -> str:
        return "".join(self._random.choice(_KEY_ALPHABET) for _ in range(64))

    def _register(self, key: ApiKey) -> None:
        if key.profile not in PROFILES and key.profile not in FAULTS:
            raise ValueError(f"unknown profile {key.profile!r}: one of {[*PROFILES, *FAULTS]}")
        key.create_time = self.server_time_ms()
        self._keys[key.api_key] = key

    # -- HTTP ---------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append((request.method, request.path))
        route = self._routes.get((request.method, request.path))
        if route is None:
            known = any(path == request.path for _method, path in self._routes)
            response = Response("", status=405 if known else 404)
        else:
            try:
                self._fault(request, signed=request.path in self._signed_paths)
                response = route(request)
            except BinanceError as error:
                response = error.response()
        return response(environ, start_response)

    def _fault(self, request: Request, signed: bool) -> None:
        key = self._keys.get(request.headers.get("X-MBX-APIKEY", ""))
        fault = FAULTS.get(key.profile) if key else None
        if fault is None or (fault.signed_only and not signed):
            return
        until = self.server_time_ms() + (fault.retry_after or 0) * 1000
        raise BinanceError(
            fault.status, fault.code, fault.msg.format(until=until), fault.retry_after
        )

    def _authenticate(self, request: Request) -> tuple[ApiKey, dict[str, str]]:
        """Binance's checks of a signed request, in its order; the key and the parameters."""
        header = request.headers.get("X-MBX-APIKEY", "")
        if len(header) != 64 or any(c not in _KEY_ALPHABET for c in header):
            raise BinanceError(401, -2014, "API-key format invalid.")
        key = self._keys.get(header)
        if key is None:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")

        # The payload is what travelled, percent-encoded as sent: query string, then body.
        query = request.environ.get("QUERY_STRING", "")
        body = ""
        if request.mimetype == "application/x-www-form-urlencoded":
            body = request.get_data(as_text=True)
        parts = [part for part in (query, body) if part]
        if not parts:
            raise _mandatory("signature")
        last = parts[-1]
        head, _, tail = last.rpartition("&")
        name, _, signature = tail.partition("=")
        if name != "signature":
            # Binance: the signature must be the last parameter.
            if "signature=" in query + "&" + body:
                raise _invalid_signature()
            raise _mandatory("signature")
        parts[-1] = head
        payload = "".join(parts)

        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        params.pop("signature", None)
        self._check_timestamp(params)
        if not signature or not key.verify(payload, unquote_plus(signature)):
            raise _invalid_signature()
        return key, params

    def _check_timestamp(self, params: dict[str, str]) -> None:
        try:
            timestamp = int(params["timestamp"])
        except (KeyError, ValueError):
            raise _mandatory("timestamp") from None
        try:
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except ValueError:
            raise _mandatory("recvWindow") from None
        if window > MAX_RECV_WINDOW_MS:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        now = self.server_time_ms()
        if timestamp >= now + 1000:
            raise BinanceError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - timestamp > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    def _api_restrictions(self, request: Request) -> Response:
        key, _params = self._authenticate(request)
        return _json(key.restrictions(), headers={"X-SAPI-USED-IP-WEIGHT-1M": "1"})


class _QuietHandler(WSGIRequestHandler):
    # The access log would print every signed query string (signature included) to the output.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class RunningSimulator:
    """A simulator served over HTTP on 127.0.0.1 in a daemon thread; `close()` stops it."""

    simulator: BinanceSimulator
    server: BaseWSGIServer
    thread: threading.Thread
    url: str

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def serve(
    simulator: BinanceSimulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve `simulator` (a new default one if None) on host:port (0: a free port)."""
    simulator = simulator or BinanceSimulator()
    server = make_server(host, port, simulator, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="binance", daemon=True)
    thread.start()
    return RunningSimulator(simulator, server, thread, f"http://{host}:{server.server_port}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.simulators.binance")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", default="0", help="makes the generated keys reproducible")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="TYPE:PROFILE",
        help="register a key at start, e.g. hmac:read_only or ed25519:trading (repeatable; "
        "default: hmac:read_only and ed25519:read_only)",
    )
    args = parser.parse_args(argv)
    simulator = BinanceSimulator(args.seed)
    running = serve(simulator, args.host, args.port)
    print(f"binance simulator: {running.url} (BINANCE_SPOT_URL, _USDM_URL, _COINM_URL)")
    for spec in args.key or ["hmac:read_only", "ed25519:read_only"]:
        kind, _, profile = spec.partition(":")
        add = simulator.add_ed25519_key if kind == "ed25519" else simulator.add_hmac_key
        api_key, secret = add(profile or "read_only")
        print(json.dumps({"type": kind, "profile": profile, "api_key": api_key, "secret": secret}))
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
