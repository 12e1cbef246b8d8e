"""A Binance REST stand-in that checks API keys, signatures and timestamps as strictly as Binance.

Keys are registered with a profile: what GET /sapi/v1/account/apiRestrictions reports for them
(`read_only`, `trading`, `withdrawals`, ...) or the fault every request carrying them meets
(`rejected`, `rate_limited`, `banned`, `server_error`). Signed requests are checked like Binance
does: `X-MBX-APIKEY`, the payload = query string + body exactly as sent (percent-encoded),
HMAC-SHA256 hex or Ed25519 base64, `signature` last, `timestamp` within `recvWindow` of the
server clock (skewed with `server_time_offset_ms` to provoke -1021). Errors are Binance's bodies,
`{"code": -1022, "msg": "..."}`, with Binance's HTTP statuses.

Account data comes from the key's History (binance_history.py). A product the history's user
never opened (`History(products=...)`; sub-accounts: `History.sub_products`) answers as Binance
does for such a user: -3003 "Margin account does not exist." on /sapi/v1/margin/*, -2015 on
fapi/dapi (apiRestrictions still answers), and for a sub-account's futures -4109 (assumed: our
reference does not give that code). A history row not final yet (`Event.settles_at`) is served
with its pending status until it settles, then with its final one under the same id.

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
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from werkzeug.wrappers import Request, Response

from infra.simulators.binance_history import (
    COINM,
    CROSS,
    DAY_MS,
    SPOT,
    SYMBOLS,
    USDM,
    Event,
    History,
    master_email,
    s,
)
from infra.simulators.serving import RunningSimulator, bind, start

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
    history: History | None = None

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

    def __init__(self, seed: int | str = 0, *, history: History | None = None) -> None:
        self._random = random.Random(f"binance-simulator:{seed}")
        # Keys registered without a history of their own get this one (None: an empty account).
        self.history = history
        # The business clock: events after it are invisible, balances are read at it (ms).
        self._now_ms: int | None = None
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
        self.feeds = Feeds(self)
        for route, handler in self.feeds.routes().items():
            self._routes[route] = handler
            self._signed_paths.add(route[1])
        self._signed_paths.discard("/api/v3/exchangeInfo")

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
        history: History | None = None,
    ) -> tuple[str, str]:
        """Register an HMAC key (deterministic from the seed unless given); (api_key, secret).

        `history`: the account the key reads (default: the simulator's `history`)."""
        with self._lock:
            api_key = api_key or self._random_key()
            secret = secret or self._random_key()
            key = ApiKey(api_key, profile, secret=secret, flags=dict(flags or {}))
            key.history = history or self.history
            self._register(key)
        return api_key, secret

    def add_ed25519_key(
        self,
        profile: str = "read_only",
        *,
        api_key: str | None = None,
        flags: dict[str, Any] | None = None,
        history: History | None = None,
    ) -> tuple[str, str]:
        """Register an Ed25519 key (deterministic from the seed); (api_key, private key PEM)."""
        with self._lock:
            api_key = api_key or self._random_key()
            private = Ed25519PrivateKey.from_private_bytes(self._random.randbytes(32))
            key = ApiKey(api_key, profile, public_key=private.public_key(), flags=dict(flags or {}))
            key.history = history or self.history
            self._register(key)
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
        """Forget the served requests, the clock skew and the faults (keys stay registered)."""
        with self._lock:
            self.server_time_offset_ms = 0
            self.requests.clear()
        self.feeds.reset()

    @property
    def now(self) -> datetime:
        """The account's clock: the end of the history plus 30 minutes unless set."""
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    @now.setter
    def now(self, value: datetime | None) -> None:
        self._now_ms = None if value is None else int(value.timestamp() * 1000)

    def now_ms(self) -> int:
        if self._now_ms is not None:
            return self._now_ms
        if self.history is not None:
            return int(self.history.end.timestamp() * 1000) + 30 * 60_000
        return self.server_time_ms()

    def set_fault(self, mode: str, **options: Any) -> None:
        """Fail data requests: `mode` rate_limited | banned | server_error | slow; options
        api_key (None: every key), every (each Nth request), count (how many, None: forever),
        retry_after (s), delay (s, slow)."""
        self.feeds.set_fault(mode, **options)

    def clear_faults(self) -> None:
        self.feeds.faults.clear()

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
        if route is not None and request.path in self.feeds.paths:
            try:
                # A key's fault profile (rejected, banned, ...) hits the history endpoints too.
                self._fault(request, signed=request.path != "/api/v3/exchangeInfo")
                response = self.feeds.serve(request, route)
            except BinanceError as error:
                response = error.response()
        elif route is None:
            known = any(path == request.path for _method, path in self._routes)
            response = Response("", status=405 if known else 404)
        else:
            try:
                self._fault(request, signed=request.path in self._signed_paths)
                response = route(request)
            except BinanceError as error:
                response = error.response()
        response.headers["Date"] = format_datetime(self.now, usegmt=True)
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


# -- account data ------------------------------------------------------------------------------

# meter -> (response header, limit per minute); sapi meters are per endpoint (reference §4).
METERS: dict[str, tuple[str, int]] = {
    "api": ("X-MBX-USED-WEIGHT-1M", 6000),
    "sapi_ip": ("X-SAPI-USED-IP-WEIGHT-1M", 12000),
    "sapi_uid": ("X-SAPI-USED-UID-WEIGHT-1M", 180000),
    "fapi": ("X-MBX-USED-WEIGHT-1M", 2400),
    "dapi": ("X-MBX-USED-WEIGHT-1M", 2400),
}
_EMPTY = History.empty()


@dataclass(frozen=True)
class Feed:
    """One history endpoint as Binance serves it: windows, look-back, paging, envelope, weight."""

    stream: str
    weight: int
    meter: str
    time_field: str
    paging: str  # from_id | offset | page | current | none
    default_limit: int
    max_limit: int
    window_ms: int | None = None
    lookback_ms: int | None = None
    limit_param: str = "limit"
    start_param: str = "startTime"
    end_param: str = "endTime"
    envelope: str = "list"  # list | rows | convert | fiat | dust | result
    mandatory: tuple[str, ...] = ()
    window_code: int = -1127
    # request parameter -> event context (or row) key it filters on
    filters: tuple[tuple[str, str], ...] = ()
    default_window_ms: int | None = None


_D = DAY_MS
FEEDS: dict[str, Feed] = {
    "/api/v3/myTrades": Feed(
        "spot_trade",
        20,
        "api",
        "time",
        "from_id",
        500,
        1000,
        _D,
        mandatory=("symbol",),
        filters=(("symbol", "symbol"),),
    ),
    "/sapi/v1/margin/myTrades": Feed(
        "margin_trade",
        10,
        "sapi_ip",
        "time",
        "from_id",
        500,
        1000,
        _D,
        mandatory=("symbol",),
        filters=(("symbol", "symbol"), ("isIsolated", "isIsolated")),
    ),
    "/sapi/v1/capital/deposit/hisrec": Feed(
        "deposit",
        1,
        "sapi_ip",
        "insertTime",
        "offset",
        1000,
        1000,
        90 * _D - 1,
        default_window_ms=90 * _D - 1,
    ),
    "/sapi/v1/capital/withdraw/history": Feed(
        "withdrawal",
        18000,
        "sapi_uid",
        "applyTime",
        "offset",
        1000,
        1000,
        90 * _D - 1,
        default_window_ms=90 * _D - 1,
    ),
    "/sapi/v1/convert/tradeFlow": Feed(
        "convert",
        3000,
        "sapi_uid",
        "createTime",
        "none",
        100,
        1000,
        30 * _D,
        envelope="convert",
        mandatory=("startTime", "endTime"),
    ),
    "/sapi/v1/asset/dribblet": Feed(
        "dust", 1, "sapi_ip", "operateTime", "none", 100, 100, envelope="dust"
    ),
    "/sapi/v1/margin/dribblet": Feed(
        "margin_dust", 1, "sapi_ip", "operateTime", "none", 100, 100, envelope="dust"
    ),
    "/sapi/v1/asset/assetDividend": Feed(
        "asset_dividend",
        10,
        "sapi_ip",
        "divTime",
        "none",
        20,
        500,
        180 * _D,
        envelope="rows",
        default_window_ms=180 * _D,
    ),
    "/sapi/v1/asset/transfer": Feed(
        "universal_transfer",
        1,
        "sapi_ip",
        "timestamp",
        "current",
        10,
        100,
        7 * _D,
        183 * _D,
        "size",
        envelope="rows",
        mandatory=("type",),
        default_window_ms=7 * _D,
        filters=(("type", "type"), ("fromSymbol", "fromSymbol"), ("toSymbol", "toSymbol")),
    ),
    "/sapi/v1/fiat/orders": Feed(
        "fiat_order",
        45000,
        "sapi_uid",
        "createTime",
        "page",
        100,
        500,
        90 * _D,
        None,
        "rows",
        "beginTime",
        "endTime",
        "fiat",
        ("transactionType",),
        filters=(("transactionType", "transactionType"),),
        default_window_ms=30 * _D,
    ),
    "/sapi/v1/fiat/payments": Feed(
        "fiat_payment",
        1,
        "sapi_ip",
        "createTime",
        "page",
        100,
        500,
        90 * _D,
        None,
        "rows",
        "beginTime",
        "endTime",
        "fiat",
        ("transactionType",),
        filters=(("transactionType", "transactionType"),),
        default_window_ms=30 * _D,
    ),
    "/sapi/v1/margin/borrow-repay": Feed(
        "margin_borrow_repay",
        10,
        "sapi_ip",
        "timestamp",
        "current",
        10,
        100,
        30 * _D,
        limit_param="size",
        envelope="rows",
        mandatory=("type",),
        filters=(("type", "type"), ("isolatedSymbol", "isolatedSymbol")),
        default_window_ms=7 * _D,
    ),
    "/sapi/v1/margin/interestHistory": Feed(
        "margin_interest",
        1,
        "sapi_ip",
        "interestAccuredTime",
        "current",
        10,
        100,
        30 * _D,
        90 * _D,
        "size",
        envelope="rows",
        filters=(("isolatedSymbol", "isolatedSymbol"),),
        default_window_ms=30 * _D,
    ),
    "/fapi/v1/income": Feed(
        "usdm_income",
        30,
        "fapi",
        "time",
        "page",
        100,
        1000,
        7 * _D,
        90 * _D,
        default_window_ms=7 * _D,
    ),
    "/dapi/v1/income": Feed(
        "coinm_income", 20, "dapi", "time", "page", 100, 1000, 365 * _D, default_window_ms=7 * _D
    ),
    "/sapi/v1/sub-account/universalTransfer": Feed(
        "sub_account_transfer",
        1,
        "sapi_ip",
        "createTimeStamp",
        "page",
        500,
        500,
        7 * _D - 1,
        envelope="result",
        default_window_ms=7 * _D - 1,
    ),
}
for _kind in ("flexible", "locked"):
    for _record, _path in (
        ("subscription", "subscriptionRecord"),
        ("redemption", "redemptionRecord"),
        ("reward", "rewardsRecord"),
    ):
        FEEDS[f"/sapi/v1/simple-earn/{_kind}/history/{_path}"] = Feed(
            f"earn_{_kind}_{_record}",
            150,
            "sapi_ip",
            "time",
            "current",
            10,
            100,
            30 * _D,
            limit_param="size",
            envelope="rows",
            window_code=-6021,
            mandatory=("type",) if (_kind, _record) == ("flexible", "reward") else (),
            default_window_ms=30 * _D,
        )
# Balance endpoints: (method, path) -> (weight, meter)
BALANCES: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", "/api/v3/account"): (20, "api"),
    ("GET", "/api/v3/exchangeInfo"): (20, "api"),
    ("POST", "/sapi/v1/asset/get-funding-asset"): (1, "sapi_ip"),
    ("GET", "/sapi/v1/margin/account"): (10, "sapi_ip"),
    ("GET", "/sapi/v1/margin/isolated/account"): (10, "sapi_ip"),
    ("GET", "/fapi/v3/balance"): (5, "fapi"),
    ("GET", "/dapi/v1/balance"): (1, "dapi"),
    ("GET", "/sapi/v1/simple-earn/flexible/position"): (150, "sapi_ip"),
    ("GET", "/sapi/v1/simple-earn/locked/position"): (150, "sapi_ip"),
    ("GET", "/sapi/v1/sub-account/list"): (1, "sapi_ip"),
    ("GET", "/sapi/v3/sub-account/assets"): (60, "sapi_uid"),
    ("GET", "/sapi/v1/sub-account/margin/account"): (10, "sapi_ip"),
    ("GET", "/sapi/v2/sub-account/futures/account"): (1, "sapi_ip"),
    ("GET", "/sapi/v1/accountSnapshot"): (2400, "sapi_ip"),
}
# Traded on exchangeInfo besides the history's pairs: discovery must not need them.
_OTHER_SYMBOLS = {
    "SOLUSDT": ("SOL", "USDT"),
    "DOGEBTC": ("DOGE", "BTC"),
    "EURUSDT": ("EUR", "USDT"),
}
LOCKED_ASSETS = frozenset({"BNB"})
# What Binance answers a key whose user never opened the product (reference §1: -2015 is also
# seen when the futures account is not opened; -3003 is margin's NO_OPENED_MARGIN_ACCOUNT).
_MARGIN_NOT_OPENED = (400, -3003, "Margin account does not exist.")
_FUTURES_NOT_OPENED = (401, -2015, "Invalid API-key, IP, or permissions for action.")
# A sub-account without futures: the code is not in our reference; -4109 is fapi's
# INACTIVE_ACCOUNT ("This account is inactive."), assumed here.
_SUB_FUTURES_NOT_OPENED = (400, -4109, "This account is inactive.")
# path prefix -> (product, the error of a user who never opened it)
_PRODUCT_PATHS = (
    ("/sapi/v1/margin/", "margin", _MARGIN_NOT_OPENED),
    ("/fapi/", "usdm", _FUTURES_NOT_OPENED),
    ("/dapi/", "coinm", _FUTURES_NOT_OPENED),
)


@dataclass
class FaultRule:
    mode: str
    api_key: str | None = None
    every: int = 1
    count: int | None = None
    retry_after: int = 1
    delay: float = 0.0
    seen: int = 0


def _bad(code: int, msg: str) -> BinanceError:
    return BinanceError(400, code, msg)


def _when(event: Event, field_name: str) -> int:
    return event.time


class Feeds:
    """The account-data endpoints of a simulator: history feeds, balances, weights and faults."""

    def __init__(self, simulator: BinanceSimulator) -> None:
        self.sim = simulator
        self.paths = set(FEEDS) | {path for _method, path in BALANCES}
        self.faults: list[FaultRule] = []
        # (meter, endpoint) -> (minute, used)
        self._used: dict[tuple[str, str], tuple[int, int]] = {}
        # Injectable so tests that never sleep can still see minutes pass.
        self.clock: Callable[[], float] = time.time
        self.stats: dict[str, int] = {"calls": 0, "weight": 0, "429": 0, "418": 0, "5xx": 0}

    def reset(self) -> None:
        self.faults.clear()
        self._used.clear()
        self.clock = time.time
        self.stats = dict.fromkeys(self.stats, 0)

    def set_fault(self, mode: str, **options: Any) -> None:
        if mode not in ("rate_limited", "banned", "server_error", "slow"):
            raise ValueError(f"unknown fault mode {mode!r}")
        self.faults.append(FaultRule(mode, **options))

    def routes(self) -> dict[tuple[str, str], Callable[[Request], Response]]:
        routes: dict[tuple[str, str], Callable[[Request], Response]] = {}
        for path in FEEDS:
            routes[("GET", path)] = lambda request, path=path: self._feed(request, FEEDS[path])
        for method, path in BALANCES:
            name = "_" + path.strip("/").replace("/", "_").replace("-", "_")
            routes[(method, path)] = getattr(self, name)
        return routes

    # -- weights and faults ----------------------------------------------------------------------

    def serve(self, request: Request, route: Callable[[Request], Response]) -> Response:
        feed = FEEDS.get(request.path)
        weight, meter = (
            (feed.weight, feed.meter) if feed else BALANCES[(request.method, request.path)]
        )
        scope = request.path if meter.startswith("sapi") else ""
        header, limit = METERS[meter]
        try:
            self._fault(request)
            with self.sim._lock:
                minute = int(self.clock() // 60)
                seen_minute, used = self._used.get((meter, scope), (minute, 0))
                used = used if seen_minute == minute else 0
                if used + weight > limit:
                    self.stats["429"] += 1
                    wait = max(1, int(60 - self.clock() % 60))
                    raise BinanceError(
                        429,
                        -1003,
                        f"Too much request weight used; current limit is {limit} "
                        "request weight per 1 MINUTE.",
                        wait,
                    )
                used += weight
                self._used[(meter, scope)] = (minute, used)
                self.stats["calls"] += 1
                self.stats["weight"] += weight
            response = route(request)
            response.headers[header] = str(used)
            return response
        except BinanceError as error:
            return error.response()

    def _fault(self, request: Request) -> None:
        key = request.headers.get("X-MBX-APIKEY", "")
        for rule in self.faults:
            if rule.api_key not in (None, key) or rule.count == 0:
                continue
            rule.seen += 1
            if rule.seen % rule.every:
                continue
            if rule.count is not None:
                rule.count -= 1
            if rule.mode == "slow":
                time.sleep(rule.delay)
                continue
            if rule.mode == "rate_limited":
                self.stats["429"] += 1
                raise BinanceError(429, -1003, FAULTS["rate_limited"].msg, rule.retry_after)
            if rule.mode == "banned":
                self.stats["418"] += 1
                until = self.sim.server_time_ms() + rule.retry_after * 1000
                raise BinanceError(
                    418, -1003, FAULTS["banned"].msg.format(until=until), rule.retry_after
                )
            self.stats["5xx"] += 1
            raise BinanceError(503, -1001, FAULTS["server_error"].msg)

    # -- history feeds ---------------------------------------------------------------------------

    def _account(self, request: Request) -> tuple[History, dict[str, str], int]:
        key, params = self.sim._authenticate(request)
        history = key.history or _EMPTY
        for prefix, product, (status, code, msg) in _PRODUCT_PATHS:
            if request.path.startswith(prefix) and not history.opened(product):
                raise BinanceError(status, code, msg)
        return history, params, self.sim.now_ms()

    def _feed(self, request: Request, feed: Feed) -> Response:
        history, params, now = self._account(request)
        for name in feed.mandatory:
            if not params.get(name):
                raise _mandatory(name)
        listed = set(history.listed_symbols(now)) | set(_OTHER_SYMBOLS)
        if feed.stream == "spot_trade" and params["symbol"] not in listed:
            raise _bad(-1121, "Invalid symbol.")
        limit = int(params.get(feed.limit_param, feed.default_limit))
        if limit > feed.max_limit or limit < 1:
            raise _bad(-1130, f"Data sent for parameter '{feed.limit_param}' is not valid.")
        start = int(params[feed.start_param]) if params.get(feed.start_param) else None
        end = int(params[feed.end_param]) if params.get(feed.end_param) else None
        wide = feed.window_ms is not None and start is not None and end is not None
        if wide and end - start > feed.window_ms:  # type: ignore[operator]
            raise _bad(feed.window_code, "Time interval is too large (more than allowed).")
        if feed.paging != "from_id" and start is None and end is None and feed.default_window_ms:
            end, start = now, now - feed.default_window_ms
        elif start is not None and end is None and feed.window_ms and feed.paging != "from_id":
            end = start + feed.window_ms
        events = [e for e in history.events if e.stream == feed.stream and e.time <= now]
        if feed.lookback_ms is not None:
            events = [e for e in events if e.time >= now - feed.lookback_ms]
        for param, attribute in feed.filters:
            wanted = params.get(param)
            if wanted is None and param in ("isolatedSymbol", "fromSymbol", "toSymbol"):
                wanted = ""
            if wanted is None:
                continue
            events = [e for e in events if _matches(e, attribute, wanted)]
        if feed.stream == "sub_account_transfer":
            events = _sub_direction(events, params)
        if start is not None:
            events = [e for e in events if e.time >= start]
        if end is not None:
            events = [e for e in events if e.time <= end]
        if feed.paging == "from_id" and params.get("fromId"):
            events = [e for e in events if e.row["id"] >= int(params["fromId"])]
        if feed.envelope == "dust":
            # Only the last 100 conversions exist (reference §3.4).
            events = events[-100:]
        rows, total, more = self._page(feed, events, params, limit, now)
        return _json(_envelope(feed, rows, total, more, start, end, limit))

    @staticmethod
    def _page(
        feed: Feed, events: list[Event], params: dict[str, str], limit: int, now: int
    ) -> tuple[list[dict[str, Any]], int, bool]:
        events = sorted(events, key=lambda e: (e.time, str(e.row)))
        total = len(events)
        if feed.paging == "offset":
            first = int(params.get("offset", 0))
        elif feed.paging in ("page", "current"):
            first = (int(params.get(feed.paging, 1)) - 1) * limit
        else:
            first = 0
        chosen = events[first : first + limit]
        return [e.row_at(now) for e in chosen], total, total > first + limit

    # -- balances --------------------------------------------------------------------------------

    def _balances(self, history: History, now: int) -> dict[tuple[Any, ...], Decimal]:
        return history.balances_at(now)

    def _api_v3_account(self, request: Request) -> Response:
        history, _params, now = self._account(request)
        balances = self._balances(history, now)
        rows = [
            {"asset": asset, "free": s(amount), "locked": "0.00000000"}
            for (kind, sub, _key, asset), amount in sorted(balances.items(), key=str)
            if kind == "spot" and sub is None
        ]
        last = max((e.time for e in history.events if e.time <= now), default=0)
        return _json(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": last,
                "accountType": "SPOT",
                "balances": rows,
                "permissions": ["SPOT"],
                "uid": 354937868,
            }
        )

    def _api_v3_exchangeInfo(self, request: Request) -> Response:
        now = self.sim.now_ms()
        key = self.sim._keys.get(request.headers.get("X-MBX-APIKEY", ""))
        history = (key.history if key else None) or self.sim.history or _EMPTY
        symbols = {sym: SYMBOLS[sym][:2] for sym in history.listed_symbols(now)}
        symbols.update(_OTHER_SYMBOLS)
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.sim.server_time_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    }
                ],
                "exchangeFilters": [],
                "symbols": [
                    {
                        "symbol": sym,
                        "status": "TRADING",
                        "baseAsset": base,
                        "quoteAsset": quote,
                        "isSpotTradingAllowed": True,
                        "isMarginTradingAllowed": True,
                        "permissions": [],
                        "permissionSets": [["SPOT", "MARGIN"]],
                    }
                    for sym, (base, quote) in sorted(symbols.items())
                ],
            }
        )

    def _sapi_v1_asset_get_funding_asset(self, request: Request) -> Response:
        history, _params, now = self._account(request)
        return _json(
            [
                {
                    "asset": asset,
                    "free": s(amount),
                    "locked": "0",
                    "freeze": "0",
                    "withdrawing": "0",
                    "btcValuation": "0",
                }
                for (kind, sub, _key, asset), amount in sorted(
                    self._balances(history, now).items(), key=str
                )
                if kind == "funding" and sub is None
            ]
        )

    @staticmethod
    def _margin_asset(asset: str, net: Decimal, liab: list[Decimal] | None) -> dict[str, str]:
        borrowed, interest = liab or (Decimal(0), Decimal(0))
        return {
            "asset": asset,
            "borrowed": s(borrowed),
            "free": s(net + borrowed + interest),
            "interest": s(interest),
            "locked": "0.00000000",
            "netAsset": s(net),
        }

    def _sapi_v1_margin_account(self, request: Request) -> Response:
        history, _params, now = self._account(request)
        balances, liabilities = history._replay(now)
        assets = sorted(
            {k[3] for k in balances if k[:3] == CROSS}
            | {a for (acc, a) in liabilities if acc == CROSS}
        )
        rows = [
            self._margin_asset(
                a, balances.get((*CROSS, a), Decimal(0)), liabilities.get((CROSS, a))
            )
            for a in assets
        ]
        return _json(
            {
                "borrowEnabled": True,
                "marginLevel": "999",
                "totalAssetOfBtc": "0",
                "totalLiabilityOfBtc": "0",
                "totalNetAssetOfBtc": "0",
                "tradeEnabled": True,
                "transferInEnabled": True,
                "transferOutEnabled": True,
                "accountType": "MARGIN_1",
                "userAssets": rows,
            }
        )

    def _sapi_v1_margin_isolated_account(self, request: Request) -> Response:
        history, _params, now = self._account(request)
        balances, liabilities = history._replay(now)
        pairs = sorted({k[2] for k in balances if k[0] == "isolated_margin"})
        assets = []
        for pair in pairs:
            base, quote = SYMBOLS[pair][:2]
            account = ("isolated_margin", None, pair)
            sides = {
                name: {
                    **self._margin_asset(
                        a, balances.get((*account, a), Decimal(0)), liabilities.get((account, a))
                    ),
                    "netAssetOfBtc": "0",
                    "totalAsset": s(balances.get((*account, a), Decimal(0))),
                    "borrowEnabled": True,
                    "repayEnabled": True,
                }
                for name, a in (("baseAsset", base), ("quoteAsset", quote))
            }
            assets.append(
                {
                    "symbol": pair,
                    **sides,
                    "isolatedCreated": True,
                    "enabled": True,
                    "marginLevel": "999",
                    "marginLevelStatus": "EXCESSIVE",
                    "tradeEnabled": True,
                }
            )
        return _json(
            {
                "assets": assets,
                "totalAssetOfBtc": "0",
                "totalLiabilityOfBtc": "0",
                "totalNetAssetOfBtc": "0",
            }
        )

    def _futures(self, request: Request, account: Any) -> Response:
        history, _params, now = self._account(request)
        rows = []
        for (kind, sub, key, asset), amount in sorted(
            self._balances(history, now).items(), key=str
        ):
            if (kind, sub, key) == account:
                rows.append(
                    {
                        "accountAlias": "SgsR",
                        "asset": asset,
                        "balance": s(amount),
                        "crossWalletBalance": s(amount),
                        "crossUnPnl": "0.00000000",
                        "availableBalance": s(amount),
                        "maxWithdrawAmount": s(amount),
                        "marginAvailable": True,
                        "updateTime": now,
                    }
                )
        return _json(rows)

    def _fapi_v3_balance(self, request: Request) -> Response:
        return self._futures(request, USDM)

    def _dapi_v1_balance(self, request: Request) -> Response:
        return self._futures(request, COINM)

    def _earn(self, request: Request, locked: bool) -> Response:
        history, params, now = self._account(request)
        rows = []
        for (kind, sub, _key, asset), amount in sorted(
            self._balances(history, now).items(), key=str
        ):
            if (kind, sub) != ("earn", None) or (asset in LOCKED_ASSETS) != locked:
                continue
            if locked:
                rows.append(
                    {
                        "positionId": 777,
                        "projectId": f"{asset}*30",
                        "asset": asset,
                        "amount": s(amount),
                        "purchaseTime": 0,
                        "duration": "30",
                        "accrualDays": "1",
                        "rewardAsset": asset,
                        "APY": "0.05",
                        "status": "HOLDING",
                    }
                )
            else:
                rows.append(
                    {
                        "totalAmount": s(amount),
                        "asset": asset,
                        "productId": f"{asset}001",
                        "canRedeem": True,
                        "collateralAmount": "0",
                        "latestAnnualPercentageRate": "0.05",
                        "cumulativeTotalRewards": "0",
                        "autoSubscribe": True,
                    }
                )
        size = int(params.get("size", 10))
        current = int(params.get("current", 1))
        return _json({"rows": rows[(current - 1) * size : current * size], "total": len(rows)})

    def _sapi_v1_simple_earn_flexible_position(self, request: Request) -> Response:
        return self._earn(request, locked=False)

    def _sapi_v1_simple_earn_locked_position(self, request: Request) -> Response:
        return self._earn(request, locked=True)

    def _sapi_v1_sub_account_list(self, request: Request) -> Response:
        history, _params, _now = self._account(request)
        subs = [] if history is _EMPTY or not history.events else list(history.sub_accounts)
        return _json(
            {
                "subAccounts": [
                    {
                        "subUserId": 1000 + i,
                        "email": email,
                        "remark": "",
                        "isFreeze": False,
                        "createTime": int(history.start.timestamp() * 1000),
                        "isManagedSubAccount": False,
                        "isAssetManagementSubAccount": False,
                    }
                    for i, email in enumerate(subs)
                ]
            }
        )

    def _sapi_v3_sub_account_assets(self, request: Request) -> Response:
        history, params, now = self._account(request)
        email = params.get("email")
        if not email:
            raise _mandatory("email")
        return _json(
            {
                "balances": [
                    {
                        "asset": asset,
                        "free": s(amount),
                        "locked": "0",
                        "freeze": "0",
                        "withdrawing": "0",
                    }
                    for (kind, sub, _key, asset), amount in sorted(
                        self._balances(history, now).items(), key=str
                    )
                    if kind == "spot" and sub == email
                ]
            }
        )

    def _sub_email(self, request: Request) -> tuple[History, dict[str, str], int, str]:
        history, params, now = self._account(request)
        email = params.get("email")
        if not email:
            raise _mandatory("email")
        return history, params, now, email

    def _sapi_v1_sub_account_margin_account(self, request: Request) -> Response:
        history, _params, now, email = self._sub_email(request)
        if not history.opened("margin", email):
            raise BinanceError(*_MARGIN_NOT_OPENED)
        balances, liabilities = history._replay(now)
        account = ("cross_margin", email, None)
        assets = sorted(
            {k[3] for k, v in balances.items() if k[:3] == account and v}
            | {a for (acc, a) in liabilities if acc == account}
        )
        rows = [
            self._margin_asset(
                a, balances.get((*account, a), Decimal(0)), liabilities.get((account, a))
            )
            for a in assets
        ]
        return _json(
            {
                "email": email,
                "marginLevel": "999",
                "totalAssetOfBtc": "0",
                "totalLiabilityOfBtc": "0",
                "totalNetAssetOfBtc": "0",
                "marginTradeCoeffVo": {
                    "forceLiquidationBar": "1.1",
                    "marginCallBar": "1.5",
                    "normalBar": "2",
                },
                "marginUserAssetVoList": rows,
            }
        )

    def _sapi_v2_sub_account_futures_account(self, request: Request) -> Response:
        history, params, now, email = self._sub_email(request)
        futures_type = params.get("futuresType")
        if futures_type not in ("1", "2"):
            raise _mandatory("futuresType")
        usdm = futures_type == "1"
        if not history.opened("usdm" if usdm else "coinm", email):
            raise BinanceError(*_SUB_FUTURES_NOT_OPENED)
        kind = "usdm_futures" if usdm else "coinm_futures"
        assets = [
            {
                "asset": asset,
                "initialMargin": "0.00000000",
                "maintenanceMargin": "0.00000000",
                "marginBalance": s(amount),
                "maxWithdrawAmount": s(amount),
                "openOrderInitialMargin": "0.00000000",
                "positionInitialMargin": "0.00000000",
                "unrealizedProfit": "0.00000000",
                "walletBalance": s(amount),
            }
            for (k, sub, _key, asset), amount in sorted(
                self._balances(history, now).items(), key=str
            )
            if (k, sub) == (kind, email)
        ]
        body = {
            "email": email,
            "assets": assets,
            "canDeposit": True,
            "canTrade": True,
            "canWithdraw": True,
            "feeTier": 0,
            "updateTime": now,
        }
        return _json({"futureAccountResp" if usdm else "deliveryAccountResp": body})

    def _sapi_v1_accountSnapshot(self, request: Request) -> Response:
        history, params, now = self._account(request)
        kind = params.get("type")
        if kind not in ("SPOT", "MARGIN", "FUTURES"):
            raise _mandatory("type")
        limit = int(params.get("limit", 7))
        if not 7 <= limit <= 30:
            raise _bad(-1130, "Data sent for parameter 'limit' is not valid.")
        end = int(params.get("endTime", now))
        start = int(params.get("startTime", end - 7 * DAY_MS))
        if end - start >= 30 * DAY_MS:
            raise _bad(-1127, "More than 30 days between startTime and endTime.")
        first = max(start, now - 30 * DAY_MS)
        vos = []
        day_end = (first // DAY_MS) * DAY_MS + DAY_MS - 1000
        while day_end <= min(end, now):
            product = {"MARGIN": "margin", "FUTURES": "usdm"}.get(kind, "spot")
            if (
                day_end >= first
                and history.opened(product)
                and history.events
                and day_end >= int(history.start.timestamp() * 1000)
            ):
                vos.append(_snapshot_vo(history, kind, day_end))
            day_end += DAY_MS
        return _json({"code": 200, "msg": "", "snapshotVos": vos[-limit:]})


def _snapshot_vo(history: History, kind: str, at: int) -> dict[str, Any]:
    balances, liabilities = history._replay(at)
    if kind == "SPOT":
        rows = [
            {"asset": k[3], "free": s(v), "locked": "0"}
            for k, v in sorted(balances.items(), key=str)
            if k[:3] == SPOT and v
        ]
        data: dict[str, Any] = {"balances": rows, "totalAssetOfBtc": "0"}
    elif kind == "MARGIN":
        rows = [
            Feeds._margin_asset(k[3], v, liabilities.get((CROSS, k[3])))
            for k, v in sorted(balances.items(), key=str)
            if k[:3] == CROSS
        ]
        data = {
            "marginLevel": "999",
            "totalAssetOfBtc": "0",
            "totalLiabilityOfBtc": "0",
            "totalNetAssetOfBtc": "0",
            "userAssets": rows,
        }
    else:
        rows = [
            {"asset": k[3], "marginBalance": s(v), "walletBalance": s(v)}
            for k, v in sorted(balances.items(), key=str)
            if k[:3] == USDM
        ]
        data = {"assets": rows, "position": []}
    return {"type": kind.lower(), "updateTime": at, "data": data}


def _matches(event: Event, attribute: str, wanted: str) -> bool:
    value = event.context.get(attribute, event.row.get(attribute, ""))
    if isinstance(value, bool):
        return value == (wanted.upper() == "TRUE")
    return str(value) == wanted


def _sub_direction(events: list[Event], params: dict[str, str]) -> list[Event]:
    # Binance: fromEmail xor toEmail; neither means "the master sent it" (pitfall 11).
    if params.get("fromEmail") and params.get("toEmail"):
        raise _bad(-1102, "fromEmail and toEmail cannot be sent together.")
    if params.get("toEmail"):
        return [e for e in events if e.row["toEmail"] == params["toEmail"]]
    sender = params.get("fromEmail") or master_email()
    return [e for e in events if e.row["fromEmail"] == sender]


def _envelope(
    feed: Feed, rows: list[dict[str, Any]], total: int, more: bool, start: Any, end: Any, limit: int
) -> Any:
    if feed.envelope == "rows":
        return {"rows": rows, "total": total} if total else {"total": 0}
    if feed.envelope == "convert":
        return {"list": rows, "startTime": start, "endTime": end, "limit": limit, "moreData": more}
    if feed.envelope == "fiat":
        body: dict[str, Any] = {
            "code": "000000",
            "message": "success",
            "total": total,
            "success": True,
        }
        if total:
            body["data"] = rows
        return body
    if feed.envelope == "dust":
        return {"total": len(rows), "userAssetDribblets": rows}
    if feed.envelope == "result":
        return {"result": rows, "totalCount": total}
    return rows


def serve(
    simulator: BinanceSimulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve `simulator` (a new default one if None) on host:port (0: a free port)."""
    simulator = simulator or BinanceSimulator()
    server, url = bind(simulator, host, port, own_date=True)
    return start(simulator, server, url, "binance")


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
