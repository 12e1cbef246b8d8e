"""The Binance client: signing what is sent, the fail-closed permission rule, domain errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from requests.adapters import BaseAdapter

from shared.config import Settings, load_settings
from shared.errors import ProviderRefused, ProviderUnavailable, RateLimited
from shared.sources.binance.client import (
    READ_FLAGS,
    RECV_WINDOW_MS,
    WRITE_FLAGS,
    Client,
    encode_params,
    evaluate_restrictions,
)
from shared.sources.binance.credentials import Ed25519Credentials, HmacCredentials

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
READ_ONLY = {
    "ipRestrict": False,
    "createTime": 1_623_840_271_000,
    "enableReading": True,
    **dict.fromkeys(WRITE_FLAGS, False),
    "enableFixReadOnly": False,
}
Reply = tuple[int, Any, dict[str, str]] | Exception


class FakeBinance(BaseAdapter):
    """requests' transport for one session: records what would be sent, answers from a script.

    `/api/v3/time` pops `times` (our own clock once they run out); other paths pop `replies`."""

    def __init__(self, replies: list[Reply] | None = None, times: list[Reply] | None = None):
        super().__init__()
        self.replies = list(replies or [])
        self.times = list(times or [])
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        reply: Reply
        if urlsplit(request.url).path == "/api/v3/time":
            now = (200, {"serverTime": int(time.time() * 1000)}, {})
            reply = self.times.pop(0) if self.times else now
        else:
            reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, body, headers = reply
        response = requests.Response()
        response.status_code = status
        response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response.headers.update(headers)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass

    def paths(self) -> list[str]:
        return [urlsplit(request.url).path for request in self.sent]


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        binance_spot_url="https://spot.binance.test",
        binance_usdm_url="https://usdm.binance.test",
        binance_coinm_url="https://coinm.binance.test",
    )


@pytest.fixture(scope="module")
def ed25519_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


MakeClient = Callable[..., tuple[Client, FakeBinance]]


@pytest.fixture
def hmac_client(settings: Settings) -> MakeClient:
    """A client with an HMAC key whose HTTP goes to a FakeBinance answering `replies`."""

    def make(*replies: Reply, times: list[Reply] | None = None) -> tuple[Client, FakeBinance]:
        client = Client(settings, HmacCredentials(api_key=API_KEY, api_secret=SECRET))
        fake = FakeBinance(list(replies), times)
        client._binance.session.mount("https://", fake)
        return client, fake

    return make


def _query(request: requests.PreparedRequest) -> str:
    return urlsplit(request.url).query


def _unsigned(query: str) -> tuple[str, str]:
    payload, _, signature = query.rpartition("&signature=")
    return payload, signature


# -- signing -----------------------------------------------------------------------------------


def test_payload_is_percent_encoded_before_signing() -> None:
    assert encode_params([("note", "café & co/+=?"), ("n", 1)]) == (
        "note=caf%C3%A9%20%26%20co%2F%2B%3D%3F&n=1"
    )


def test_booleans_are_lower_case_and_none_is_left_out() -> None:
    assert encode_params([("a", True), ("b", False), ("c", None)]) == "a=true&b=false"


def test_hmac_signs_exactly_the_encoded_query_it_sends(hmac_client: MakeClient) -> None:
    client, fake = hmac_client((200, {}, {}))
    client.signed(
        lambda binance: binance._request_margin_api(
            "get", "account/apiRestrictions", True, data={"note": "café & co/+="}
        )
    )
    sent = fake.sent[-1]
    payload, signature = _unsigned(_query(sent))
    assert payload.startswith("note=caf%C3%A9%20%26%20co%2F%2B%3D&timestamp=")
    assert payload.endswith(f"&recvWindow={RECV_WINDOW_MS}")
    expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert signature == expected
    assert sent.headers["X-MBX-APIKEY"] == API_KEY
    # The signature is last, and what Binance reads back is what we meant.
    assert list(dict(parse_qsl(_query(sent))))[-1] == "signature"
    assert dict(parse_qsl(payload))["note"] == "café & co/+="


def test_post_signs_the_body_it_sends(hmac_client: MakeClient) -> None:
    client, fake = hmac_client((200, {}, {}))
    client.signed(
        lambda binance: binance._request_margin_api("post", "x", True, data={"asset": "€UR"})
    )
    sent = fake.sent[-1]
    assert not _query(sent)
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload, signature = _unsigned(sent.body)
    assert payload.startswith("asset=%E2%82%ACUR&timestamp=")
    assert signature == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def test_ed25519_signature_is_base64_percent_encoded(
    settings: Settings, ed25519_key: Ed25519PrivateKey
) -> None:
    client = Client(settings, Ed25519Credentials(api_key=API_KEY, private_key=_pem(ed25519_key)))
    fake = FakeBinance([(200, {}, {})] * 8)
    client._binance.session.mount("https://", fake)
    for note in ("a", "bb", "ccc", "dddd", "é/ +", "x" * 7, "y" * 11):
        client.signed(
            lambda binance, note=note: binance._request_margin_api(
                "get", "x", True, data={"note": note}
            )
        )
        payload, signature = _unsigned(_query(fake.sent[-1]))
        assert "+" not in signature and "/" not in signature and "=" not in signature
        ed25519_key.public_key().verify(base64.b64decode(unquote(signature)), payload.encode())


def test_an_ed25519_pem_longer_than_120_characters_is_not_taken_for_rsa(
    settings: Settings, ed25519_key: Ed25519PrivateKey
) -> None:
    # python-binance 1.0.37 guesses RSA from len(pem) > 120; CRLF and 16-character lines are 126.
    body = "".join(_pem(ed25519_key).splitlines()[1:-1])
    pem = "\r\n".join(
        ["-----BEGIN PRIVATE KEY-----", *textwrap.wrap(body, 16), "-----END PRIVATE KEY-----"]
    )
    assert len(pem) > 120
    client = Client(settings, Ed25519Credentials(api_key=API_KEY, private_key=pem))
    fake = FakeBinance([(200, READ_ONLY, {})])
    client._binance.session.mount("https://", fake)
    client.check_permissions()
    payload, signature = _unsigned(_query(fake.sent[-1]))
    ed25519_key.public_key().verify(base64.b64decode(unquote(signature)), payload.encode())


# -- hosts, timeout, clock ------------------------------------------------------------------------


def test_every_product_line_goes_to_its_configured_host(settings: Settings) -> None:
    binance = Client(settings, HmacCredentials(api_key=API_KEY, api_secret=SECRET))._binance
    assert binance._create_api_uri("time", False) == "https://spot.binance.test/api/v3/time"
    assert binance._create_margin_api_uri("account/apiRestrictions") == (
        "https://spot.binance.test/sapi/v1/account/apiRestrictions"
    )
    assert binance._create_futures_api_uri("income") == "https://usdm.binance.test/fapi/v1/income"
    assert binance._create_futures_data_api_uri("x").startswith("https://usdm.binance.test/")
    assert binance._create_futures_coin_api_url("income") == (
        "https://coinm.binance.test/dapi/v1/income"
    )
    assert binance._create_futures_coin_data_api_url("x").startswith("https://coinm.binance.test/")
    # No setting names these hosts: refusing beats reaching the real Binance from a test.
    for unrouted in (
        lambda: binance._create_options_api_uri("x"),
        lambda: binance._create_papi_api_uri("x"),
        lambda: binance._create_website_uri("x"),
    ):
        with pytest.raises(NotImplementedError):
            unrouted()


def test_requests_time_out_after_ten_seconds(hmac_client: MakeClient) -> None:
    client, fake = hmac_client((200, READ_ONLY, {}))
    client.check_permissions()
    assert fake.timeouts == [10.0, 10.0]


def test_the_clock_is_read_once_per_client(hmac_client: MakeClient) -> None:
    client, fake = hmac_client((200, READ_ONLY, {}), (200, READ_ONLY, {}))
    client.check_permissions()
    client.check_permissions()
    assert fake.paths() == [
        "/api/v3/time",
        "/sapi/v1/account/apiRestrictions",
        "/sapi/v1/account/apiRestrictions",
    ]


def test_timestamps_follow_the_server_clock(hmac_client: MakeClient) -> None:
    server_ms = int(time.time() * 1000) + 3_600_000
    client, fake = hmac_client((200, READ_ONLY, {}), times=[(200, {"serverTime": server_ms}, {})])
    client.check_permissions()
    stamp = int(dict(parse_qsl(_query(fake.sent[-1])))["timestamp"])
    assert abs(stamp - server_ms) < 5_000


CLOCK_REJECTED = (
    400,
    {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    {},
)


def test_a_rejected_timestamp_re_reads_the_clock_and_retries_once(
    hmac_client: MakeClient,
) -> None:
    now = int(time.time() * 1000)
    client, fake = hmac_client(
        CLOCK_REJECTED,
        (200, READ_ONLY, {}),
        times=[(200, {"serverTime": now}, {}), (200, {"serverTime": now + 30_000}, {})],
    )
    assert client.check_permissions().read_only
    assert fake.paths() == ["/api/v3/time", "/sapi/v1/account/apiRestrictions"] * 2
    first, retried = (int(dict(parse_qsl(_query(r))).get("timestamp", 0)) for r in fake.sent[1::2])
    assert retried - first >= 29_000


def test_a_second_rejected_timestamp_is_an_outage_not_a_loop(hmac_client: MakeClient) -> None:
    client, fake = hmac_client(CLOCK_REJECTED, CLOCK_REJECTED)
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert caught.value.details["provider_code"] == -1021
    assert len(fake.sent) == 4


# -- the fail-closed rule -------------------------------------------------------------------------


def test_a_read_only_key_is_acceptable() -> None:
    report = evaluate_restrictions(READ_ONLY)
    assert report.can_read and report.write_permissions == () and report.read_only
    assert report.reported == READ_ONLY


@pytest.mark.parametrize("flag", WRITE_FLAGS)
def test_each_write_flag_makes_the_key_unacceptable(flag: str) -> None:
    report = evaluate_restrictions({**READ_ONLY, flag: True})
    assert report.write_permissions == (flag,)
    assert not report.read_only


@pytest.mark.parametrize("flag", [*sorted(READ_FLAGS - {"enableReading"}), "ipRestrict"])
def test_flags_that_grant_no_write_are_fine(flag: str) -> None:
    assert evaluate_restrictions({**READ_ONLY, flag: True}).read_only


@pytest.mark.parametrize(
    ("flag", "value", "is_write"),
    [
        ("enableQuantumTrading", True, True),
        ("permitsEverything", True, True),
        ("EnableShouting", True, True),
        ("enableQuantumTrading", False, False),
        ("enableQuantumTrading", "true", True),
        ("enableQuantumTrading", 1, True),
        ("enableQuantumTrading", None, True),
        ("enableQuantumTrading", {"spot": False}, True),
        ("enableWithdrawals", None, True),
        ("enableWithdrawals", "false", True),
        ("canTrade", True, False),
        ("tradingAuthorityExpirationTime", 1_628_985_600_000, False),
    ],
)
def test_unknown_and_odd_flags_fail_closed(flag: str, value: Any, is_write: bool) -> None:
    report = evaluate_restrictions({**READ_ONLY, flag: value})
    assert (flag in report.write_permissions) is is_write
    assert report.read_only is not is_write


@pytest.mark.parametrize("reading", [False, None, "true", 1])
def test_a_key_that_cannot_read_is_unacceptable(reading: Any) -> None:
    report = evaluate_restrictions({**READ_ONLY, "enableReading": reading})
    assert not report.can_read and not report.read_only


def test_missing_reading_flag_is_unacceptable() -> None:
    reported = dict(READ_ONLY)
    del reported["enableReading"]
    assert not evaluate_restrictions(reported).can_read


def test_several_write_flags_are_all_named() -> None:
    reported = {**READ_ONLY, "enableWithdrawals": True, "enableQuantumTrading": True}
    assert set(evaluate_restrictions(reported).write_permissions) == {
        "enableWithdrawals",
        "enableQuantumTrading",
    }


def test_check_permissions_reports_what_binance_said(hmac_client: MakeClient) -> None:
    client, _fake = hmac_client((200, {**READ_ONLY, "enableFutures": True}, {}))
    report = client.check_permissions()
    assert report.can_read and report.write_permissions == ("enableFutures",)
    assert report.reported["createTime"] == READ_ONLY["createTime"]


# -- errors ---------------------------------------------------------------------------------------


def _body(code: int, msg: str = "x") -> dict[str, Any]:
    return {"code": code, "msg": msg}


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, -1022), (401, -2014), (401, -2015), (400, -2015), (401, -1002)],
)
def test_a_rejected_key_is_refused(hmac_client: MakeClient, status: int, code: int) -> None:
    client, _fake = hmac_client((status, _body(code), {}))
    with pytest.raises(ProviderRefused) as caught:
        client.check_permissions()
    assert caught.value.message.startswith("Binance rejected the API key: ")
    assert caught.value.details == {"credentials": {"provider_code": code}}


@pytest.mark.parametrize(
    ("status", "code", "headers", "retry_after"),
    [
        (429, -1003, {"Retry-After": "7"}, 7),
        (429, -1003, {"Retry-After": "0"}, 1),
        (429, None, {}, 1),
        (400, -1003, {"Retry-After": "30"}, 30),
    ],
)
def test_rate_limits_become_rate_limited(
    hmac_client: MakeClient,
    status: int,
    code: int | None,
    headers: dict[str, str],
    retry_after: int,
) -> None:
    body: Any = _body(code) if code else "Too Many Requests"
    client, _fake = hmac_client((status, body, headers))
    with pytest.raises(RateLimited) as caught:
        client.check_permissions()
    assert caught.value.retry_after == retry_after


def test_an_ip_ban_says_until_when(hmac_client: MakeClient) -> None:
    client, _fake = hmac_client((418, _body(-1003, "IP banned"), {"Retry-After": "120"}))
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert "banned" in caught.value.message and "until" in caught.value.message
    assert caught.value.details["retry_after"] == 120
    assert caught.value.provider == "binance"


def test_an_ip_ban_without_retry_after_reads_the_message(hmac_client: MakeClient) -> None:
    until_ms = (int(time.time()) + 600) * 1000
    message = f"Way too much request weight used; IP banned until {until_ms}."
    client, _fake = hmac_client((418, _body(-1003, message), {}))
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert 590 <= caught.value.details["retry_after"] <= 600


@pytest.mark.parametrize(
    "reply",
    [
        (500, "<html>Internal Server Error</html>", {}),
        (502, "", {}),
        (503, _body(-1001, "Internal error"), {}),
        (504, _body(-1007, "Timeout waiting for response from backend server."), {}),
        (403, "<html>WAF</html>", {}),
        (400, _body(-1102, "Mandatory parameter 'x' was not sent"), {}),
        (200, "<html>not json</html>", {}),
    ],
    ids=["500-html", "502-empty", "503", "504", "403-waf", "400-unexpected", "200-not-json"],
)
def test_server_errors_are_outages(hmac_client: MakeClient, reply: Reply) -> None:
    client, _fake = hmac_client(reply)
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert caught.value.provider == "binance"


SIGNED_URL = (
    "HTTPSConnectionPool(host='spot.binance.test', port=443): Max retries exceeded with url: "
    "/sapi/v1/account/apiRestrictions?timestamp=1&recvWindow=10000&signature=deadbeefcafe"
)


@pytest.mark.parametrize(
    "exception",
    [
        requests.ReadTimeout(SIGNED_URL),
        requests.ConnectTimeout(SIGNED_URL),
        requests.ConnectionError(SIGNED_URL),
        requests.exceptions.SSLError(SIGNED_URL),
    ],
    ids=["read-timeout", "connect-timeout", "connection", "tls"],
)
def test_network_failures_are_outages_that_carry_no_url(
    hmac_client: MakeClient, exception: Exception
) -> None:
    client, _fake = hmac_client(exception)
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    error = caught.value
    assert "deadbeef" not in str(error) + repr(error.details)
    # No chained requests exception either: its text is the signed URL.
    assert error.__context__ is None and error.__cause__ is None
    if isinstance(exception, requests.Timeout):
        assert "10 s" in error.message


def test_the_clock_endpoint_failing_is_an_outage(hmac_client: MakeClient) -> None:
    client, fake = hmac_client(times=[(503, "", {})])
    with pytest.raises(ProviderUnavailable):
        client.check_permissions()
    assert fake.paths() == ["/api/v3/time"]


def test_other_credentials_are_a_programming_error(settings: Settings) -> None:
    with pytest.raises(TypeError):
        Client(settings, READ_ONLY)  # type: ignore[arg-type]


@pytest.fixture
def planted_secret_client(settings: Settings) -> Iterator[tuple[Client, FakeBinance]]:
    client = Client(settings, HmacCredentials(api_key=API_KEY, api_secret=SECRET))
    fake = FakeBinance([(400, _body(-1022, "Signature for this request is not valid."), {})])
    client._binance.session.mount("https://", fake)
    yield client, fake


def test_errors_and_logs_carry_no_key_secret_or_signature(
    planted_secret_client: tuple[Client, FakeBinance],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, fake = planted_secret_client
    caplog.set_level("DEBUG")
    with pytest.raises(ProviderRefused) as caught:
        client.check_permissions()
    signature = _unsigned(_query(fake.sent[-1]))[1]
    captured = capsys.readouterr()
    seen = " ".join(
        [
            caplog.text,
            repr([vars(record) for record in caplog.records]),
            captured.out,
            captured.err,
            str(caught.value),
            repr(caught.value.details),
            repr(client),
        ]
    )
    assert len(signature) == 64
    for secret in (API_KEY, SECRET, signature):
        assert secret not in seen
