"""Google sign-in test fixtures: the OIDC simulator over HTTP, the `auth` function aimed at it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator

import pytest

from infra.simulators.google_oidc import GoogleOidcSimulator, RunningSimulator, serve

REDIRECT_URI = "https://app.coinfrs.test/auth/callback"
CLIENT_ID = "coinfrs-test.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-test-only-client-secret-4e1f"


def unused_port() -> int:
    """A 127.0.0.1 port nothing listens on (for "Google is unreachable")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def google_oidc_server() -> Iterator[RunningSimulator]:
    """One simulator for the session (its RSA keys take a moment), on a free 127.0.0.1 port."""
    simulator = GoogleOidcSimulator(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
    )
    with serve(simulator) as running:
        yield running


@pytest.fixture
def google_oidc(google_oidc_server: RunningSimulator) -> Iterator[GoogleOidcSimulator]:
    """The simulator, reset, with a fresh Google account signing in (so no test sees another's)."""
    simulator = google_oidc_server.simulator
    simulator.reset()
    simulator.set_identity(f"g-{uuid.uuid4().hex[:12]}@coinfrs.test")
    yield simulator
    simulator.reset()


@pytest.fixture
def google_configured(
    google_oidc_server: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., None]]:
    """Settings (and the `auth` function's runtime) pointed at the simulator; call the fixture
    with environment overrides (None unsets a variable) to reconfigure within a test."""
    import functions.api.auth as auth_function
    from shared.auth import google
    from shared.config import Runtime, get_settings, load_settings

    def configure(**env: str | None) -> None:
        values: dict[str, str | None] = {
            "GOOGLE_CLIENT_ID": CLIENT_ID,
            "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
            "GOOGLE_DISCOVERY_URL": google_oidc_server.discovery_url,
            "OAUTH_REDIRECT_URIS": REDIRECT_URI,
            **env,
        }
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        google.clear_caches()
        monkeypatch.setattr(auth_function, "runtime", Runtime(load_settings()))

    configure()
    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()
    google.clear_caches()
