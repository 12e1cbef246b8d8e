"""The Binance client over HTTP against the simulator: every key profile, signing, the clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests
from binance.client import Client as StockBinanceClient
from binance.exceptions import BinanceAPIException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from infra.simulators.binance import BinanceSimulator, RunningSimulator
from shared.config import Settings, load_settings
from shared.errors import DomainError, ProviderRefused, ProviderUnavailable, RateLimited
from shared.sources.binance.client import Client
from shared.sources.binance.credentials import Ed25519Credentials, HmacCredentials
from shared.sources.registry import source_types

# A key and a secret nobody could mistake for anything else in a log.
PLANTED_KEY = "PLANTEDapiKEY" + "k" * 51
PLANTED_SECRET = "PLANTEDsecret" + "s" * 51

KeyMaker = Callable[..., BaseModel]


def _hmac(simulator: BinanceSimulator, profile: str, **kwargs: str) -> BaseModel:
    api_key, secret = simulator.add_hmac_key(profile, **kwargs)
    return HmacCredentials(api_key=api_key, api_secret=secret)


def _ed25519(simulator: BinanceSimulator, profile: str, **kwargs: str) -> BaseModel:
    api_key, private_key = simulator.add_ed25519_key(profile, **kwargs)
    return Ed25519Credentials(api_key=api_key, private_key=private_key)


KEY_TYPES = pytest.mark.parametrize("make_key", [_hmac, _ed25519], ids=["hmac", "ed25519"])


@KEY_TYPES
@pytest.mark.parametrize(
    ("profile", "can_read", "writes"),
    [
        ("read_only", True, ()),
        ("trading", True, ("enableSpotAndMarginTrading",)),
        ("withdrawals", True, ("enableWithdrawals",)),
        ("internal_transfer", True, ("enableInternalTransfer",)),
        ("universal_transfer", True, ("permitsUniversalTransfer",)),
        ("futures", True, ("enableFutures",)),
        ("unknown_future_flag", True, ("enableQuantumTrading",)),
        ("no_reading", False, ()),
    ],
)
def test_each_profile_is_reported(
    binance_simulator: BinanceSimulator,
    binance_settings: Settings,
    make_key: KeyMaker,
    profile: str,
    can_read: bool,
    writes: tuple[str, ...],
) -> None:
    report = Client(binance_settings, make_key(binance_simulator, profile)).check_permissions()
    assert report.can_read is can_read
    assert report.write_permissions == writes
    assert report.read_only is (profile == "read_only")
    assert report.reported["enableReading"] is can_read
    assert binance_simulator.requests == [
        ("GET", "/api/v3/time"),
        ("GET", "/sapi/v1/account/apiRestrictions"),
    ]


@KEY_TYPES
@pytest.mark.parametrize(
    ("profile", "error", "check"),
    [
        ("rejected", ProviderRefused, lambda e: e.details["credentials"]["provider_code"] == -2015),
        ("rate_limited", RateLimited, lambda e: e.retry_after == 7),
        (
            "banned",
            ProviderUnavailable,
            lambda e: "banned" in e.message and e.details["retry_after"] == 120,
        ),
        ("server_error", ProviderUnavailable, lambda e: "HTTP 503" in e.message),
    ],
)
def test_each_fault_profile_becomes_its_domain_error(
    binance_simulator: BinanceSimulator,
    binance_settings: Settings,
    make_key: KeyMaker,
    profile: str,
    error: type[DomainError],
    check: Callable[[DomainError], bool],
) -> None:
    client = Client(binance_settings, make_key(binance_simulator, profile))
    with pytest.raises(error) as caught:
        client.check_permissions()
    assert check(caught.value), caught.value.message


def test_a_wrong_secret_is_refused(
    binance_simulator: BinanceSimulator, binance_settings: Settings
) -> None:
    api_key, _secret = binance_simulator.add_hmac_key("read_only")
    credentials = HmacCredentials(api_key=api_key, api_secret="W" * 64)
    with pytest.raises(ProviderRefused) as caught:
        Client(binance_settings, credentials).check_permissions()
    assert caught.value.details == {"credentials": {"provider_code": -1022}}


def test_a_private_key_of_another_pair_is_refused(
    binance_simulator: BinanceSimulator, binance_settings: Settings
) -> None:
    api_key, _pem = binance_simulator.add_ed25519_key("read_only")
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    credentials = Ed25519Credentials(api_key=api_key, private_key=other.decode())
    with pytest.raises(ProviderRefused) as caught:
        Client(binance_settings, credentials).check_permissions()
    assert caught.value.details == {"credentials": {"provider_code": -1022}}


@pytest.mark.parametrize(
    ("api_key", "code"), [("short", -2014), ("U" * 64, -2015)], ids=["malformed", "unknown"]
)
def test_a_malformed_or_unknown_key_is_refused(
    binance_simulator: BinanceSimulator, binance_settings: Settings, api_key: str, code: int
) -> None:
    credentials = HmacCredentials(api_key=api_key, api_secret="S" * 64)
    with pytest.raises(ProviderRefused) as caught:
        Client(binance_settings, credentials).check_permissions()
    assert caught.value.details == {"credentials": {"provider_code": code}}


@KEY_TYPES
@pytest.mark.parametrize("skew_ms", [30_000, -5_000], ids=["server-ahead", "server-behind"])
def test_clock_skew_is_re_synced_once_then_succeeds(
    binance_simulator: BinanceSimulator,
    binance_settings: Settings,
    make_key: KeyMaker,
    skew_ms: int,
) -> None:
    client = Client(binance_settings, make_key(binance_simulator, "read_only"))
    assert client.check_permissions().read_only
    binance_simulator.server_time_offset_ms = skew_ms
    assert client.check_permissions().read_only
    assert binance_simulator.requests == [
        ("GET", "/api/v3/time"),
        ("GET", "/sapi/v1/account/apiRestrictions"),
        ("GET", "/sapi/v1/account/apiRestrictions"),  # -1021
        ("GET", "/api/v3/time"),
        ("GET", "/sapi/v1/account/apiRestrictions"),
    ]


def test_a_skewed_clock_at_the_first_call_costs_nothing(
    binance_simulator: BinanceSimulator, binance_settings: Settings
) -> None:
    binance_simulator.server_time_offset_ms = 120_000
    client = Client(binance_settings, _hmac(binance_simulator, "read_only"))
    assert client.check_permissions().read_only
    assert len(binance_simulator.requests) == 2


@KEY_TYPES
def test_values_needing_percent_encoding_are_signed_as_sent(
    binance_simulator: BinanceSimulator, binance_settings: Settings, make_key: KeyMaker
) -> None:
    client = Client(binance_settings, make_key(binance_simulator, "read_only"))
    answer = client.signed(
        lambda binance: binance._request_margin_api(
            "get", "account/apiRestrictions", True, data={"note": "café & co/+=~*"}
        )
    )
    assert answer["enableReading"] is True


def test_stock_python_binance_fails_where_ours_signs_right(
    binance_simulator: BinanceSimulator, binance_settings: Settings
) -> None:
    # Proves the simulator checks the encoded payload: python-binance 1.0.37 signs `café` raw and
    # requests sends `caf%C3%A9`. If this starts passing, python-binance fixed its signing.
    api_key, secret = binance_simulator.add_hmac_key("read_only")
    stock = StockBinanceClient(api_key, secret, ping=False)
    stock.MARGIN_API_URL = f"{binance_settings.binance_spot_url}/sapi"
    with pytest.raises(BinanceAPIException) as caught:
        stock.get_account_api_permissions(note="café")
    assert caught.value.code == -1022
    assert stock.get_account_api_permissions()["enableReading"] is True


def test_an_unreachable_binance_is_an_outage() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = load_settings(binance_spot_url=url, binance_usdm_url=url, binance_coinm_url=url)
    client = Client(settings, HmacCredentials(api_key="A" * 64, api_secret="S" * 64))
    with pytest.raises(ProviderUnavailable) as caught:
        client.check_permissions()
    assert str(port) not in caught.value.message


def test_the_registry_line_builds_this_client(
    binance_simulator: BinanceSimulator, binance_settings: Settings
) -> None:
    source = source_types()["binance"]
    credentials = _ed25519(binance_simulator, "read_only")
    assert source.client(binance_settings, credentials).check_permissions().read_only


def test_no_secret_reaches_logs_output_or_errors(
    binance_simulator: BinanceSimulator,
    binance_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    api_key, secret = binance_simulator.add_hmac_key(
        "read_only", api_key=PLANTED_KEY, secret=PLANTED_SECRET
    )
    ed_key, pem = binance_simulator.add_ed25519_key("read_only")
    errors: list[DomainError] = []

    Client(
        binance_settings, HmacCredentials(api_key=api_key, api_secret=secret)
    ).check_permissions()
    Client(
        binance_settings, Ed25519Credentials(api_key=ed_key, private_key=pem)
    ).check_permissions()
    wrong = HmacCredentials(api_key=api_key, api_secret=PLANTED_SECRET[::-1])
    with pytest.raises(ProviderRefused) as refused:
        Client(binance_settings, wrong).check_permissions()
    errors.append(refused.value)
    binance_simulator.add_hmac_key("banned", api_key="B" + PLANTED_KEY[1:], secret=PLANTED_SECRET)
    banned = HmacCredentials(api_key="B" + PLANTED_KEY[1:], api_secret=PLANTED_SECRET)
    with pytest.raises(ProviderUnavailable) as unavailable:
        Client(binance_settings, banned).check_permissions()
    errors.append(unavailable.value)

    captured = capsys.readouterr()
    seen = "\n".join(
        [
            caplog.text,
            repr([vars(record) for record in caplog.records]),
            captured.out,
            captured.err,
            *(f"{error} {error.details!r} {error.__context__!r}" for error in errors),
        ]
    )
    # The requests did happen, and were logged (urllib3 included), only without secrets.
    assert "/sapi/v1/account/apiRestrictions" in caplog.text
    assert "signature=[redacted]" in caplog.text
    assert "PLANTED" not in seen
    assert "".join(pem.splitlines()[1:-1]) not in seen
    assert ed_key not in seen
    assert not re.search(r"signature=(?!\[redacted\])", seen)


# -- the simulator is as strict as Binance (else the tests above would prove little) -------------


def _hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _get(url: str, api_key: str, query: str) -> tuple[int, Any]:
    response = requests.get(
        f"{url}/sapi/v1/account/apiRestrictions?{query}",
        headers={"X-MBX-APIKEY": api_key},
        timeout=5,
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("build", "status", "code"),
    [
        (lambda s, now: f"timestamp={now}&signature={_hex(s, f'timestamp={now}')}", 200, None),
        (
            lambda s, now: f"timestamp={now}&signature={_hex(s, f'timestamp={now}').upper()}",
            200,
            None,
        ),
        (lambda s, now: f"signature={_hex(s, f'timestamp={now}')}&timestamp={now}", 400, -1022),
        (lambda s, now: f"timestamp={now}&signature={_hex(s, f'timestamp={now + 1}')}", 400, -1022),
        (lambda s, now: f"recvWindow=1&signature={_hex(s, 'recvWindow=1')}", 400, -1102),
        (lambda s, now: f"timestamp={now}", 400, -1102),
        (
            lambda s, now: (
                f"timestamp={now}&recvWindow=60001"
                f"&signature={_hex(s, f'timestamp={now}&recvWindow=60001')}"
            ),
            400,
            -1131,
        ),
        (
            lambda s, now: f"timestamp={now + 2000}&signature={_hex(s, f'timestamp={now + 2000}')}",
            400,
            -1021,
        ),
        (
            lambda s, now: f"timestamp={now - 6000}&signature={_hex(s, f'timestamp={now - 6000}')}",
            400,
            -1021,
        ),
        (
            lambda s, now: (
                f"timestamp={now - 6000}&recvWindow=7000"
                f"&signature={_hex(s, f'timestamp={now - 6000}&recvWindow=7000')}"
            ),
            200,
            None,
        ),
        (
            # Signed un-encoded, sent encoded: what Binance has rejected since 2026-01-15.
            lambda s, now: (
                f"note=a%20b&timestamp={now}&signature={_hex(s, f'note=a b&timestamp={now}')}"
            ),
            400,
            -1022,
        ),
        (
            lambda s, now: (
                f"note=a%20b&timestamp={now}&signature={_hex(s, f'note=a%20b&timestamp={now}')}"
            ),
            200,
            None,
        ),
    ],
    ids=[
        "valid",
        "hex-case-insensitive",
        "signature-not-last",
        "other-payload",
        "no-timestamp",
        "no-signature",
        "recv-window-too-large",
        "ahead-of-server",
        "outside-default-window",
        "inside-given-window",
        "signed-unencoded",
        "signed-encoded",
    ],
)
def test_the_simulator_checks_signed_requests_like_binance(
    binance_server: RunningSimulator,
    binance_simulator: BinanceSimulator,
    build: Callable[[str, int], str],
    status: int,
    code: int | None,
) -> None:
    api_key, secret = binance_simulator.add_hmac_key("read_only")
    answer_status, body = _get(binance_server.url, api_key, build(secret, int(time.time() * 1000)))
    assert answer_status == status, body
    assert body.get("code") == code


def test_the_simulator_wants_ed25519_signatures_percent_encoded(
    binance_server: RunningSimulator, binance_simulator: BinanceSimulator
) -> None:
    api_key, pem = binance_simulator.add_ed25519_key("read_only")
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(key, Ed25519PrivateKey)
    for attempt in range(64):
        payload = f"timestamp={int(time.time() * 1000)}&attempt={attempt}"
        signature = base64.b64encode(key.sign(payload.encode())).decode()
        if "+" in signature:
            break
    # A raw `+` reads as a space, as in any form-encoded query: Binance says percent-encode it.
    assert _get(binance_server.url, api_key, f"{payload}&signature={signature}")[1]["code"] == -1022
    encoded = quote(signature, safe="")
    assert _get(binance_server.url, api_key, f"{payload}&signature={encoded}")[0] == 200
