"""`make serve` end to end: embedded PostgreSQL, migrations, every route on one port, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The local stack as `make serve` runs it, on a fresh checkout's defaults (no DATABASE_URL)."""
    home = tmp_path_factory.mktemp("stack")
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "COINFRS_ENV_FILE": str(home / ".env"),
        "COINFRS_LOCAL_DIR": str(home / "local"),
        "PYTHONUNBUFFERED": "1",
        "SMTP_PORT": str(_free_port()),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("ready: "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(90):
        process.kill()
        pytest.fail("the stack never printed ready:\n" + "".join(lines[-40:]))
    yield {
        "process": process,
        "lines": lines,
        "api": f"http://127.0.0.1:{port}/api/v1",
        "home": home,
    }
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def test_ready_line_and_generated_secrets(stack):
    assert any(line.strip() == f"ready: {stack['api']}" for line in stack["lines"])
    env_file = (stack["home"] / ".env").read_text()
    assert "SECRET_KEY=" in env_file and "ENCRYPTION_KEY=" in env_file
    # The secrets it generated are never printed.
    secret = next(line for line in env_file.splitlines() if line.startswith("SECRET_KEY="))
    assert secret.split("=", 1)[1] not in "".join(stack["lines"])


def test_health_database_and_openapi_over_http(stack):
    api = stack["api"]
    health = httpx.get(f"{api}/health/").json()
    assert health["success"] is True and health["data"]["status"] == "ok"
    database = httpx.get(f"{api}/health/db").json()
    assert database["data"]["database"] == "ok"
    document = httpx.get(f"{api}/openapi.json").json()
    validate(document)


def test_errors_over_http_are_envelopes(stack):
    api = stack["api"]
    unknown_route = httpx.get(f"{api}/nowhere")
    assert (unknown_route.status_code, unknown_route.json()["error"]["code"]) == (404, "NOT_FOUND")
    unknown_field = httpx.get(f"{api}/health/", params={"verbose": "1"})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["error"]["details"]["unknown_fields"] == ["query.verbose"]
    wrong_method = httpx.post(f"{api}/health/", content=b"{not json")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (
        405,
        "METHOD_NOT_ALLOWED",
    )


def test_a_finance_user_signs_in_with_the_printed_code(stack):
    api = stack["api"]
    assert (
        httpx.post(
            f"{api}/auth/otp/request", json={"data": {"email": "cfo@example.com"}}
        ).status_code
        == 202
    )
    deadline = time.monotonic() + 10
    codes: list[str] = []
    while not codes and time.monotonic() < deadline:
        codes = [
            line.rsplit(" ", 1)[1].strip()
            for line in stack["lines"]
            if line.startswith("mail to cfo@example.com: sign-in code")
        ]
        time.sleep(0.05)
    assert codes, "the mail sink printed no code"
    signed_in = httpx.post(
        f"{api}/auth/otp/verify", json={"data": {"email": "cfo@example.com", "code": codes[-1]}}
    )
    assert signed_in.status_code == 200
    assert signed_in.cookies.get("coinfrs_refresh")
    token = signed_in.json()["data"]["access_token"]
    me = httpx.get(f"{api}/users/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["data"]["email"] == "cfo@example.com"
    types = httpx.get(f"{api}/datasources/types", headers={"Authorization": f"Bearer {token}"})
    assert {item["type"] for item in types.json()["data"]} == {"binance", "fireblocks"}


def test_interrupt_stops_everything_it_started(stack):
    process = stack["process"]
    port = int(stack["api"].split(":")[2].split("/")[0])
    postgres_port = int((stack["home"] / "local" / "postgres" / "port").read_text())
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    time.sleep(0.2)
    for closed in (port, postgres_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", closed)) != 0, f"port {closed} still open"
    assert any("embedded PostgreSQL stopped" in line for line in stack["lines"])
