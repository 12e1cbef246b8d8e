"""The Fireblocks client against the simulator over real HTTP, and the simulator's own checks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from infra.simulators.fireblocks import FireblocksSimulator, RunningSimulator, serve
from shared.config import load_settings
from shared.errors import ProviderRefused, ProviderUnavailable, RateLimited
from shared.sources.fireblocks.client import Client, RequestFailed
from shared.sources.fireblocks.credentials import ApiKeyCredentials

ROOT = Path(__file__).resolve().parents[4]
VAULT = "/v1/vault/accounts_paged?limit=1"
PROBES = [VAULT, "/v1/management/api_users", "/v1/supported_assets"]
EDITOR_WRITES = ("editor_endpoint:/v1/supported_assets",)
ADMIN_WRITES = ("list_users (admin)", "editor_endpoint:/v1/supported_assets")


@pytest.fixture(scope="module")
def fireblocks_simulator() -> Iterator[RunningSimulator]:
    with serve(FireblocksSimulator()) as running:
        yield running


@pytest.fixture(scope="module")
def keys(fireblocks_simulator) -> dict[str, tuple[str, str]]:
    """One API user per profile: (api key, private key PEM). Two RSA keys in all, to stay fast."""
    sim = fireblocks_simulator.simulator
    viewer = sim.add_key("viewer")
    profiles = ("editor", "signer", "approver", "non_signing_admin", "admin")
    faults = ("rejected", "rate_limited", "server_error")
    registered = {p: sim.add_key(p, private_key_pem=viewer[1]) for p in profiles + faults}
    other_api_key, other_pem = sim.add_key("viewer")
    return {"viewer": viewer, "other_viewer": (other_api_key, other_pem), **registered}


@pytest.fixture
def client_for(fireblocks_simulator, keys) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(
        profile: str, *, pem: str | None = None, api_key: str | None = None, **http: Any
    ) -> Client:
        key, own_pem = keys[profile]
        credentials = ApiKeyCredentials(api_key=api_key or key, private_key=pem or own_pem)
        settings = load_settings(fireblocks_url=fireblocks_simulator.url)
        client = Client(settings, credentials, http=httpx.Client(timeout=10, **http))
        made.append(client)
        return client

    yield make
    for client in made:
        client._http.close()


def _requests_of(sim: FireblocksSimulator, api_key: str) -> list[tuple[str, str]]:
    return [(r.method, r.uri) for r in sim.requests if r.api_key == api_key]


# --- the client's probe, end to end ---------------------------------------------------------


def test_viewer_key_is_read_only(client_for, fireblocks_simulator, keys):
    report = client_for("viewer").check_permissions()
    assert report.read_only
    assert (report.can_read, report.write_permissions) == (True, ())
    assert [p["outcome"] for p in report.reported["probes"]] == ["allowed", "denied", "denied"]
    requests = _requests_of(fireblocks_simulator.simulator, keys["viewer"][0])
    assert requests == [("GET", path) for path in PROBES]


def test_viewer_denied_with_401_minus_8_is_read_only_too(keys):
    # Reference §1.4 leaves open whether Fireblocks denies with 403 or 401/-8; both must pass.
    sim = FireblocksSimulator(denied_status=401)
    api_key, pem = sim.add_key("viewer", private_key_pem=keys["viewer"][1])
    with serve(sim) as running:
        settings = load_settings(fireblocks_url=running.url)
        with Client(settings, ApiKeyCredentials(api_key=api_key, private_key=pem)) as client:
            report = client.check_permissions()
    assert report.read_only
    assert [r.status for r in sim.requests] == [200, 401, 401]
    assert [r.code for r in sim.requests] == [None, -8, -8]


@pytest.mark.parametrize(
    ("profile", "writes", "role"),
    [
        ("editor", EDITOR_WRITES, None),
        ("signer", EDITOR_WRITES, None),
        ("approver", EDITOR_WRITES, None),
        ("admin", ADMIN_WRITES, "ADMIN"),
        ("non_signing_admin", ADMIN_WRITES, "NON_SIGNING_ADMIN"),
    ],
)
def test_keys_above_viewer_are_refused_with_named_write_permissions(
    client_for, fireblocks_simulator, keys, profile, writes, role
):
    report = client_for(profile).check_permissions()
    assert not report.read_only
    assert report.can_read
    assert report.write_permissions == writes
    assert report.reported.get("role") == role
    requests = _requests_of(fireblocks_simulator.simulator, keys[profile][0])
    assert requests == [("GET", path) for path in PROBES]


def test_rejected_key_raises_provider_refused(client_for):
    with pytest.raises(ProviderRefused) as caught:
        client_for("rejected").check_permissions()
    assert "Fireblocks rejected the API key" in caught.value.message
    assert caught.value.details["fireblocks"]["code"] == -7
    assert "api_key" in caught.value.details["credentials"]


def test_unknown_api_key_raises_provider_refused(client_for):
    with pytest.raises(ProviderRefused) as caught:
        client_for("viewer", api_key=str(uuid.uuid4())).check_permissions()
    assert caught.value.details["fireblocks"]["code"] == -7


def test_private_key_of_another_user_raises_provider_refused(client_for, keys):
    with pytest.raises(ProviderRefused) as caught:
        client_for("viewer", pem=keys["other_viewer"][1]).check_permissions()
    assert caught.value.details["fireblocks"]["code"] == -1
    assert "private_key" in caught.value.details["credentials"]


def test_rate_limited_key_raises_rate_limited_with_retry_after(client_for):
    with pytest.raises(RateLimited) as caught:
        client_for("rate_limited").check_permissions()
    assert caught.value.retry_after == 7


def test_server_error_raises_provider_unavailable(client_for):
    with pytest.raises(ProviderUnavailable) as caught:
        client_for("server_error").check_permissions()
    assert "HTTP 503" in caught.value.message


def test_unreachable_fireblocks_raises_provider_unavailable(keys):
    with serve(FireblocksSimulator()) as running:
        url = running.url
    api_key, pem = keys["viewer"]
    settings = load_settings(fireblocks_url=url)
    with Client(settings, ApiKeyCredentials(api_key=api_key, private_key=pem)) as client:
        with pytest.raises(ProviderUnavailable, match="could not be reached"):
            client.check_permissions()


def test_vault_accounts_are_a_tiny_deterministic_paged_list(client_for):
    client = client_for("viewer")
    first = client.get("/v1/vault/accounts_paged", {"limit": 1}).json()
    assert [a["id"] for a in first["accounts"]] == ["0"]
    assert first["paging"] == {"after": "1"}
    rest = client.get("/v1/vault/accounts_paged", {"limit": 1, "after": "1"}).json()
    assert [a["id"] for a in rest["accounts"]] == ["1"]
    assert rest["accounts"][0]["assets"][0] == {
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
    all_accounts = client.get("/v1/vault/accounts_paged").json()
    assert [a["id"] for a in all_accounts["accounts"]] == ["0", "1"]
    with pytest.raises(RequestFailed) as caught:
        client.get("/v1/vault/accounts_paged", {"limit": 501})
    assert (caught.value.status, caught.value.code) == (400, 1000)


# --- the simulator checks what Fireblocks checks (§1.3, §1.4) -------------------------------


def _token(api_key: str, pem: str, path: str, body: bytes = b"", /, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "uri": path,
        "nonce": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 30,
        "sub": api_key,
        "bodyHash": hashlib.sha256(body).hexdigest(),
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, pem, algorithm="RS256")


def _send(
    url: str, api_key: str, token: str | None, path: str = VAULT, body: bytes = b""
) -> httpx.Response:
    headers = {"X-API-Key": api_key}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request("GET", url + path, headers=headers, content=body, timeout=10)


def _code(response: httpx.Response) -> int | None:
    return json.loads(response.content).get("code")


# Each case breaks one claim of an otherwise valid token; `now` is taken when the case runs.
TAMPERING: list[Any] = [
    pytest.param(lambda now: {"bodyHash": hashlib.sha256(b"{}").hexdigest()}, -1, id="body-hash"),
    pytest.param(lambda now: {"bodyHash": ""}, -1, id="empty-body-hash-claim"),
    pytest.param(lambda now: {"uri": "/v1/vault/accounts_paged?limit=2"}, -4, id="uri-query"),
    pytest.param(lambda now: {"uri": "/v1/vault/accounts_paged"}, -4, id="uri-without-query"),
    pytest.param(lambda now: {"uri": "/vault/accounts_paged?limit=1"}, -4, id="uri-without-v1"),
    pytest.param(lambda now: {"iat": now - 100, "exp": now - 50}, -10, id="expired"),
    pytest.param(lambda now: {"iat": now + 120, "exp": now + 150}, -12, id="iat-in-future"),
    pytest.param(lambda now: {"iat": now, "exp": now + 56}, -5, id="lifetime-over-55s"),
    pytest.param(lambda now: {"iat": now, "exp": now - 1}, -5, id="exp-before-iat"),
    pytest.param(lambda now: {"iat": str(now)}, -5, id="iat-not-an-integer"),
    pytest.param(lambda now: {"sub": None}, -2, id="sub-missing"),
    pytest.param(lambda now: {"sub": str(uuid.uuid4())}, -6, id="sub-other-user"),
    pytest.param(lambda now: {"nonce": None}, -5, id="nonce-missing"),
]


@pytest.mark.parametrize(("changes", "code"), TAMPERING)
def test_simulator_rejects_tampered_tokens(fireblocks_simulator, keys, changes, code):
    api_key, pem = keys["viewer"]
    token = _token(api_key, pem, VAULT, **changes(int(time.time())))
    response = _send(fireblocks_simulator.url, api_key, token)
    assert response.status_code == 401
    assert _code(response) == code
    # §1.4: 401 bodies come as octet-stream; the client must not rely on the content type.
    assert response.headers["Content-Type"].startswith("application/octet-stream")


def test_simulator_accepts_the_untampered_token_and_both_empty_body_hashes(
    fireblocks_simulator, keys
):
    # The control for the table above: the same helper, unchanged, is accepted.
    api_key, pem = keys["viewer"]
    url = fireblocks_simulator.url
    assert _send(url, api_key, _token(api_key, pem, VAULT)).status_code == 200
    legacy = hashlib.sha256(b'""').hexdigest()
    assert _send(url, api_key, _token(api_key, pem, VAULT, bodyHash=legacy)).status_code == 200
    now = int(time.time())
    longest = _token(api_key, pem, VAULT, iat=now, exp=now + 55)
    assert _send(url, api_key, longest).status_code == 200


def test_simulator_hashes_the_body_actually_received(fireblocks_simulator, keys):
    api_key, pem = keys["viewer"]
    url = fireblocks_simulator.url
    body = b'{"note": "x"}'
    signed_empty = _token(api_key, pem, VAULT)
    assert _code(_send(url, api_key, signed_empty, body=body)) == -1
    assert _send(url, api_key, _token(api_key, pem, VAULT, body), body=body).status_code == 200


def test_simulator_rejects_a_reused_nonce(fireblocks_simulator, keys):
    api_key, pem = keys["viewer"]
    token = _token(api_key, pem, VAULT)
    assert _send(fireblocks_simulator.url, api_key, token).status_code == 200
    replay = _send(fireblocks_simulator.url, api_key, token)
    assert (replay.status_code, _code(replay)) == (401, -5)
    # A fresh nonce with the same everything else passes again.
    fresh = _token(api_key, pem, VAULT, nonce=str(uuid.uuid4()))
    assert _send(fireblocks_simulator.url, api_key, fresh).status_code == 200


def test_simulator_rejects_missing_jwt_unknown_key_wrong_signer_and_alg_none(
    fireblocks_simulator, keys
):
    url = fireblocks_simulator.url
    api_key, pem = keys["viewer"]
    assert _code(_send(url, api_key, None)) == -3
    assert _code(_send(url, str(uuid.uuid4()), _token(api_key, pem, VAULT))) == -7
    other_pem = keys["other_viewer"][1]
    assert _code(_send(url, api_key, _token(api_key, other_pem, VAULT))) == -1
    claims = jwt.decode(_token(api_key, pem, VAULT), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert _code(_send(url, api_key, unsigned)) == -5
    assert _code(_send(url, api_key, "not.a.jwt")) == -5


def test_simulator_denies_above_role_endpoints_and_only_serves_get(fireblocks_simulator, keys):
    url = fireblocks_simulator.url
    api_key, pem = keys["viewer"]
    users = "/v1/management/api_users"
    denied = _send(url, api_key, _token(api_key, pem, users), path=users)
    assert (denied.status_code, _code(denied)) == (403, -8)
    token = _token(api_key, pem, "/v1/transactions", b"{}")
    post = httpx.post(
        url + "/v1/transactions",
        headers={"X-API-Key": api_key, "Authorization": f"Bearer {token}"},
        content=b"{}",
    )
    assert post.status_code in (404, 405)


# --- secrets --------------------------------------------------------------------------------


def _windows(text: str, size: int = 24, step: int = 8) -> list[str]:
    """Overlapping pieces of `text`: any leak of size + step - 1 characters contains one."""
    return [text[i : i + size] for i in range(0, len(text) - size + 1, step)] + [text[-size:]]


def test_no_secret_in_logs_output_or_errors(client_for, keys, caplog, capsys):
    caplog.set_level("DEBUG")
    sent: list[str] = []

    def capture(request: httpx.Request) -> None:
        sent.append(request.headers["Authorization"].removeprefix("Bearer "))

    hooks = {"event_hooks": {"request": [capture]}}
    shown: list[str] = []
    client_for("viewer", **hooks).check_permissions()
    report = client_for("admin", **hooks).check_permissions()
    shown.append(repr(report))
    for profile, pem in (("rejected", None), ("viewer", keys["other_viewer"][1])):
        with pytest.raises(ProviderRefused) as caught:
            client_for(profile, pem=pem, **hooks).check_permissions()
        shown += [str(caught.value), repr(caught.value.details), repr(caught.value.args)]

    assert len(sent) >= 8
    out, err = capsys.readouterr()
    shown += [out, err, caplog.text, *(json.dumps(vars(r), default=str) for r in caplog.records)]
    assert any("fireblocks request" in r.getMessage() for r in caplog.records)
    secrets = [api_key for api_key, _ in keys.values()]
    for _, pem in keys.values():
        body = [line for line in pem.splitlines() if not line.startswith("-----")]
        secrets += body[:2] + body[-2:]
    for token in sent:  # any 31 characters of a token's signed part would be a leak
        secrets += _windows(token.split(".", 1)[1])
    everything = "\n".join(shown)
    leaked = [secret[:12] + "…" for secret in secrets if secret in everything]
    assert leaked == []


# --- the CLI --------------------------------------------------------------------------------


def test_cli_serves_a_viewer_key(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.simulators.fireblocks",
            "--port",
            "0",
            "--keys-dir",
            tmp_path,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().split("FIREBLOCKS_URL=")[1]
        line = process.stdout.readline()
        assert line.strip().startswith("viewer:")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        pem = Path(fields["private_key"]).read_text()
        assert Path(fields["private_key"]).stat().st_mode & 0o077 == 0
        credentials = ApiKeyCredentials(api_key=fields["api_key"], private_key=pem)
        with Client(load_settings(fireblocks_url=url), credentials) as client:
            assert client.check_permissions().read_only
    finally:
        process.terminate()
        process.wait(timeout=10)
