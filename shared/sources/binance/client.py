"""Binance over HTTP: requests signed exactly as sent, Binance's clock, errors as domain errors."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests
from binance.client import Client as BinanceClient
from pydantic import BaseModel

from shared.config import Settings
from shared.errors import DomainError, ProviderRefused, ProviderUnavailable, RateLimited
from shared.sources.binance.credentials import Ed25519Credentials, HmacCredentials
from shared.sources.common.base import PermissionReport

log = logging.getLogger(__name__)

T = TypeVar("T")

PROVIDER = "binance"
TIMEOUT_SECONDS = 10.0
# rotki's value: Binance's default 5000 ms produced -1021 under load.
RECV_WINDOW_MS = 10_000

# Reference §2: every documented apiRestrictions flag that lets a key change something.
WRITE_FLAGS = (
    "enableSpotAndMarginTrading",
    "enableWithdrawals",
    "enableInternalTransfer",
    "permitsUniversalTransfer",
    "enableMargin",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
)
READ_FLAGS = frozenset({"enableReading", "enableFixReadOnly"})
# A capability Binance adds later looks like this; it counts as a write until someone reviews it.
_CAPABILITY = re.compile(r"^(enable|permits)", re.IGNORECASE)

# Codes by which Binance says the key itself is wrong: the customer must fix it, a retry cannot.
# The reasons are ours: Binance's `msg` is not shown to customers.
_REFUSALS = {
    -1002: "the key is not authorized for this request",
    -1022: "the signature does not match; check that the secret (or private key) belongs to "
    "this API key",
    -2014: "the API key is malformed",
    -2015: "the key is unknown or deleted, does not accept requests from this server's IP "
    "address, or lacks a permission",
}
# Codes by which Binance says the user never opened the product the path belongs to (margin,
# isolated margin, futures). -2015 on a margin/futures path is also seen then (reference §1),
# but it means a rejected key too: the caller tells them apart (a key that still reads its
# apiRestrictions is not rejected), see `Client.product_not_opened`.
NOT_OPENED_CODES = {
    -3003: "the margin account does not exist",
    -11001: "the isolated margin account does not exist",
    -4109: "the futures account is inactive",
}
_BANNED_UNTIL = re.compile(r"banned until (\d{13})")
_SIGNATURE = re.compile(r"signature=[^&\s\"']*")


class _RedactSignature(logging.Filter):
    """urllib3 logs each request line at DEBUG, query string included: drop the signature."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "signature=" in message:
            record.msg, record.args = _SIGNATURE.sub("signature=[redacted]", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactSignature())


class _ClockRejected(ProviderUnavailable):
    """-1021: our timestamp fell outside Binance's window (retried once after a re-sync)."""


class Transient(ProviderUnavailable):
    """A 5xx answer, a timeout or a broken connection: the outcome is unknown, a GET may retry."""


class ProductNotOpened(ProviderUnavailable):
    """Binance says the user never opened the product (margin, futures) this path reads."""


class Banned(ProviderUnavailable):
    """HTTP 418: Binance banned this IP; nothing may be sent before `banned_until`."""

    def __init__(self, message: str, banned_until: datetime, details: dict[str, Any]) -> None:
        super().__init__(PROVIDER, message, details)
        self.banned_until = banned_until


def evaluate_restrictions(reported: Mapping[str, Any]) -> PermissionReport:
    """Apply reference §2's fail-closed rule to a GET /sapi/v1/account/apiRestrictions answer."""
    writes = []
    for name, value in reported.items():
        if name in READ_FLAGS or not (name in WRITE_FLAGS or _CAPABILITY.match(name)):
            continue
        # Only an explicit `false` is safe: a flag Binance adds later, or one whose type changes
        # (null, "true", 1), may allow a write.
        if value is not False:
            writes.append(name)
    return PermissionReport(
        can_read=reported.get("enableReading") is True,
        write_permissions=tuple(writes),
        reported=dict(reported),
    )


def encode_params(params: Iterable[tuple[str, Any]]) -> str:
    """The query string as sent and as signed: every value percent-encoded (RFC 3986)."""
    return urlencode(
        [(name, _text(value)) for name, value in params if value is not None], quote_via=quote
    )


def _text(value: Any) -> str:
    # str(True) is "True"; Binance's booleans are lower case.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after(response: requests.Response, message: str) -> int | None:
    header = response.headers.get("Retry-After", "")
    if header.strip().isdigit():
        return int(header)
    banned = _BANNED_UNTIL.search(message)
    if banned:
        return max(0, int(banned.group(1)) // 1000 - int(time.time()))
    return None


def _used_weight(response: requests.Response) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith(("x-mbx-used-weight", "x-sapi-used-"))
    }


def _error(response: requests.Response, path: str) -> DomainError:
    """The domain error for a non-2xx Binance answer."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    message = str(body.get("msg", "")) if isinstance(body, dict) else ""
    details: dict[str, Any] = {"provider_code": code} if code is not None else {}
    log.warning(
        "binance refused a request",
        extra={"provider": PROVIDER, "path": path, "status": status, "provider_code": code},
    )
    if status == 418:
        retry_after = _retry_after(response, message) or 0
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=retry_after)
        return Banned(
            f"Binance has banned this server's IP address until {until:%Y-%m-%d %H:%M:%S} UTC "
            "for exceeding its rate limits",
            until,
            {**details, "retry_after": retry_after, "banned_until": until.isoformat()},
        )
    if status == 429 or code == -1003:
        # rotki saw Retry-After 0 in practice: never ask for less than a second.
        retry_after = max(_retry_after(response, message) or 0, 1)
        return RateLimited(
            f"Binance's rate limit was reached; retry in {retry_after} s", retry_after, details
        )
    if code in _REFUSALS:
        return ProviderRefused(
            f"Binance rejected the API key: {_REFUSALS[code]}",
            {"credentials": {"provider_code": code}},
        )
    if code in NOT_OPENED_CODES:
        return ProductNotOpened(
            PROVIDER, f"Binance: {NOT_OPENED_CODES[code]} ({path})", {**details, "path": path}
        )
    if code == -1021:
        return _ClockRejected(
            PROVIDER, "Binance rejected the request time even after re-reading its clock", details
        )
    if status >= 500:
        return Transient(PROVIDER, f"Binance answered HTTP {status}", details)
    # Anything else is a request Coinfrs should not have sent; Binance's text helps fix it.
    log.error(
        "binance refused a request for an unexpected reason",
        extra={"provider": PROVIDER, "path": path, "provider_code": code, "reason": message[:200]},
    )
    return ProviderUnavailable(
        PROVIDER, f"Binance refused the request (HTTP {status}, code {code})", details
    )


class _Binance(BinanceClient):
    """python-binance aimed at the configured hosts, signing the very string it sends."""

    def __init__(
        self,
        settings: Settings,
        api_key: str,
        api_secret: str | None,
        private_key: str | None,
        timeout: float,
    ) -> None:
        super().__init__(api_key, api_secret, private_key=private_key, ping=False)
        self._timeout = timeout
        # python-binance has no base-URL setting: its URLs are templates it formats in __init__.
        self.API_URL = f"{settings.binance_spot_url}/api"
        self.MARGIN_API_URL = f"{settings.binance_spot_url}/sapi"
        self.FUTURES_URL = f"{settings.binance_usdm_url}/fapi"
        self.FUTURES_DATA_URL = f"{settings.binance_usdm_url}/futures/data"
        self.FUTURES_COIN_URL = f"{settings.binance_coinm_url}/dapi"
        self.FUTURES_COIN_DATA_URL = f"{settings.binance_coinm_url}/futures/data"

    # Hosts no setting names would reach the real Binance from a local or test run: refuse them.
    def _create_options_api_uri(self, path: str) -> str:
        raise NotImplementedError("no setting routes Binance options (eapi) requests")

    def _create_papi_api_uri(self, path: str, version: int = 1) -> str:
        raise NotImplementedError("no setting routes Binance portfolio-margin (papi) requests")

    def _create_website_uri(self, path: str) -> str:
        raise NotImplementedError("no setting routes requests to Binance's website")

    def _init_private_key(self, private_key: Any, private_key_pass: str | None = None) -> Any:
        # python-binance takes a PEM longer than 120 characters for RSA; an Ed25519 PEM is 118-119
        # with LF line ends, so CRLF or shorter lines tip it over. Coinfrs accepts Ed25519 only.
        if not private_key:
            return None
        from Crypto.PublicKey import ECC

        return ECC.import_key(private_key)

    def _signature(self, payload: str) -> str:
        raw = (
            self._ed25519_signature(payload) if self.PRIVATE_KEY else self._hmac_signature(payload)
        )
        # Ed25519 signatures are base64: `+`, `/` and `=` must travel percent-encoded.
        return quote(raw, safe="")

    def _request(
        self, method: str, uri: str, signed: bool, force_params: bool = False, **kwargs: Any
    ) -> Any:
        """Every python-binance call ends here: build, sign, send and read one request.

        python-binance 1.0.37 signs `k=v` pairs un-encoded (only `symbol` is quoted) and then lets
        requests percent-encode what it sends; since 2026-01-15 Binance verifies the encoded form,
        so any value needing encoding fails with -1022. Here the encoded string is built once,
        signed, and sent byte for byte."""
        params = dict(kwargs.pop("data", None) or {})
        if kwargs or {"headers", "requests_params"} & params.keys():
            raise TypeError("per-call requests options are not supported")
        pairs = list(params.items())
        if signed:
            now_ms = int(time.time() * 1000 + self.timestamp_offset)
            pairs += [("timestamp", now_ms), ("recvWindow", RECV_WINDOW_MS)]
        payload = encode_params(pairs)
        if signed:
            payload = f"{payload}&signature={self._signature(payload)}"
        in_query = method == "get" or force_params
        url = f"{uri}?{payload}" if payload and in_query else uri
        body = payload if payload and not in_query else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        path = urlsplit(uri).path

        started = time.monotonic()
        failure: DomainError | None = None
        try:
            response = self.session.request(
                method.upper(), url, data=body, headers=headers, timeout=self._timeout
            )
        except requests.Timeout:
            failure = Transient(PROVIDER, f"Binance did not answer within {self._timeout:g} s")
        except requests.RequestException as error:
            failure = Transient(PROVIDER, f"Binance could not be reached ({type(error).__name__})")
        # Raised outside the except blocks: requests' exception text holds the signed URL, and an
        # implicit __context__ would carry it into tracebacks and Sentry.
        if failure is not None:
            log.warning(
                "binance unreachable",
                extra={"provider": PROVIDER, "path": path, "reason": failure.message},
            )
            raise failure

        self.response = response
        log.debug(
            "binance request",
            extra={
                "provider": PROVIDER,
                "method": method.upper(),
                "path": path,
                "status": response.status_code,
                "elapsed_ms": round((time.monotonic() - started) * 1000),
                "used_weight": _used_weight(response),
            },
        )
        if not 200 <= response.status_code < 300:
            raise _error(response, path)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            failure = ProviderUnavailable(
                PROVIDER, "Binance answered with something other than JSON"
            )
        raise failure


# Reference §4: meter -> (weight header, limit per minute). Each sapi endpoint has its own budget.
METERS: dict[str, tuple[str, int]] = {
    "api": ("x-mbx-used-weight-1m", 6000),
    "sapi_ip": ("x-sapi-used-ip-weight-1m", 12000),
    "sapi_uid": ("x-sapi-used-uid-weight-1m", 180000),
    "fapi": ("x-mbx-used-weight-1m", 2400),
    "dapi": ("x-mbx-used-weight-1m", 2400),
}
# Slow down once a budget is this full: other processes on the IP share it.
BUDGET_SHARE = 0.9
MAX_RETRIES = 3
BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class Reply:
    """One answer: its JSON, Binance's time of the reply (`Date`), the weight it reported."""

    data: Any
    date: datetime | None
    used_weight: int | None


@dataclass
class CallStats:
    """What a client spent: calls answered, weight charged, rate limits met, retries made."""

    calls: int = 0
    weight: int = 0
    rate_limited: int = 0
    retries: int = 0
    by_meter: dict[str, int] = field(default_factory=dict)


class Pacer:
    """Keeps each weight budget under BUDGET_SHARE of its limit, from the weights Binance reports.

    Binance counts weight per clock minute (UTC); when the next call would cross the share, wait
    for the next minute instead of meeting a 429 (and, past it, a 418 ban)."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
        self._sleep, self._clock = sleep, clock
        self._used: dict[tuple[str, str], tuple[int, int]] = {}

    def before(self, meter: str, scope: str, weight: int) -> None:
        limit = METERS[meter][1]
        minute, used = self._used.get((meter, scope), (-1, 0))
        now = self._clock()
        if int(now // 60) != minute:
            return
        if used + weight > limit * BUDGET_SHARE:
            wait = 60 - now % 60 + 0.5
            log.info(
                "binance weight budget nearly spent; waiting for the next minute",
                extra={"provider": PROVIDER, "meter": meter, "used": used, "wait_s": wait},
            )
            self._sleep(wait)
            self._used.pop((meter, scope), None)

    def after(self, meter: str, scope: str, used: int | None, weight: int) -> None:
        minute = int(self._clock() // 60)
        if used is None:
            # No header: count our own charge.
            seen_minute, seen = self._used.get((meter, scope), (minute, 0))
            used = (seen if seen_minute == minute else 0) + weight
        self._used[(meter, scope)] = (minute, used)

    def exhausted(self, meter: str, scope: str) -> None:
        self._used[(meter, scope)] = (int(self._clock() // 60), METERS[meter][1])


def meter_of(path: str, uid: bool = False) -> tuple[str, str]:
    """(meter, scope) of an endpoint: sapi budgets are per endpoint, the others shared."""
    if path.startswith("/sapi/"):
        return ("sapi_uid" if uid else "sapi_ip"), path
    if path.startswith("/fapi/"):
        return "fapi", ""
    if path.startswith("/dapi/"):
        return "dapi", ""
    return "api", ""


def _reply_date(header: str | None) -> datetime | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC)
    except (TypeError, ValueError):
        return None


class Client:
    """Binance for one set of credentials: the permission check, and `signed()` for any call."""

    def __init__(
        self,
        settings: Settings,
        credentials: BaseModel,
        *,
        timeout: float = TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(credentials, HmacCredentials):
            secret, private_key = credentials.api_secret.get_secret_value(), None
        elif isinstance(credentials, Ed25519Credentials):
            secret, private_key = None, credentials.private_key.get_secret_value()
        else:
            raise TypeError(f"not Binance credentials: {type(credentials).__name__}")
        self._binance = _Binance(settings, credentials.api_key, secret, private_key, timeout)
        self._clock_read = False
        self._hosts = {
            "/api/": settings.binance_spot_url,
            "/sapi/": settings.binance_spot_url,
            "/fapi/": settings.binance_usdm_url,
            "/dapi/": settings.binance_coinm_url,
        }
        self._sleep = sleep
        self.pacer = Pacer(sleep, clock)
        self.stats = CallStats()

    def request(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        method: str = "GET",
        weight: int = 1,
        uid: bool = False,
        signed: bool = True,
    ) -> Reply:
        """One call to any Binance REST path, paced under its weight budget and retried.

        429: waits Retry-After (at least 1 s) and retries; 5xx, timeouts: retries with
        exponential backoff; at most MAX_RETRIES retries, then raises ProviderUnavailable.
        418 raises Banned at once (nothing may be sent until the ban ends)."""
        prefix = "/" + path.split("/")[1] + "/"
        uri = self._hosts[prefix] + path
        meter, scope = meter_of(path, uid)
        attempt = 0
        while True:
            self.pacer.before(meter, scope, weight)
            try:
                if signed:
                    data = self.signed(
                        lambda b: b._request(method.lower(), uri, True, data=dict(params or {}))
                    )
                else:
                    data = self._binance._request(
                        method.lower(), uri, False, data=dict(params or {})
                    )
            except RateLimited as error:
                self.stats.rate_limited += 1
                self.pacer.exhausted(meter, scope)
                if attempt >= MAX_RETRIES:
                    raise
                wait: float = max(error.retry_after, 1)
            except Transient as error:
                if attempt >= MAX_RETRIES:
                    raise ProviderUnavailable(
                        PROVIDER,
                        f"Binance failed {attempt + 1} times in a row on {path}: {error.message}",
                        error.details,
                    ) from None
                wait = BACKOFF_SECONDS * 2**attempt
            else:
                headers = self._binance.response.headers
                header = headers.get(METERS[meter][0])
                used = int(header) if header and header.isdigit() else None
                self.pacer.after(meter, scope, used, weight)
                self.stats.calls += 1
                self.stats.weight += weight
                self.stats.by_meter[meter] = self.stats.by_meter.get(meter, 0) + weight
                return Reply(data, _reply_date(headers.get("Date")), used)
            attempt += 1
            self.stats.retries += 1
            log.warning(
                "binance call failed; retrying",
                extra={"provider": PROVIDER, "path": path, "attempt": attempt, "wait_s": wait},
            )
            self._sleep(wait)

    def __repr__(self) -> str:
        return f"<binance.Client {self._binance.API_URL}>"

    def sync_clock(self) -> int:
        """Read Binance's clock (GET /api/v3/time) and keep the offset to ours, in ms."""
        started = time.time()
        answer = self._binance.get_server_time()
        finished = time.time()
        server_ms = answer.get("serverTime") if isinstance(answer, dict) else None
        if not isinstance(server_ms, int):
            raise ProviderUnavailable(PROVIDER, "Binance's time endpoint answered without a time")
        # Binance read its clock somewhere in the round trip; the middle is the best guess.
        offset = server_ms - round((started + finished) * 500)
        self._binance.timestamp_offset = offset
        self._clock_read = True
        log.debug("binance clock read", extra={"provider": PROVIDER, "offset_ms": offset})
        return offset

    def signed(self, call: Callable[[BinanceClient], T]) -> T:
        """Run one signed python-binance call on Binance's clock; on -1021 re-read it, retry once.

        Raises ProviderRefused, RateLimited or ProviderUnavailable as the answer warrants."""
        if not self._clock_read:
            self.sync_clock()
        try:
            return call(self._binance)
        except _ClockRejected:
            log.warning(
                "binance rejected the request time; re-reading its clock",
                extra={"provider": PROVIDER, "offset_ms": self._binance.timestamp_offset},
            )
        self.sync_clock()
        return call(self._binance)

    def product_not_opened(self, error: Exception) -> int | None:
        """The Binance code if `error` (from a margin or futures read) says the user never opened
        that product; None if it says something else. -2015 counts only when the key still reads
        its apiRestrictions with reading enabled: a key that was rejected, deleted or lost its
        IP whitelisting fails that call (which then raises), so it can never pass as "not
        opened"."""
        if isinstance(error, ProductNotOpened):
            return error.details.get("provider_code")
        if not isinstance(error, ProviderRefused):
            return None
        code = (error.details.get("credentials") or {}).get("provider_code")
        if code != -2015:
            return None
        if not self.check_permissions().can_read:
            return None
        return -2015

    def check_permissions(self) -> PermissionReport:
        """What the key may do, from GET /sapi/v1/account/apiRestrictions (fail closed)."""
        reported = self.signed(lambda binance: binance.get_account_api_permissions())
        if not isinstance(reported, dict):
            raise ProviderUnavailable(PROVIDER, "Binance answered apiRestrictions with no object")
        report = evaluate_restrictions(reported)
        log.info(
            "binance key permissions read",
            extra={
                "provider": PROVIDER,
                "can_read": report.can_read,
                "write_permissions": list(report.write_permissions),
            },
        )
        return report
