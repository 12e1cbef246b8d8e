"""Suite-wide fixtures: test settings, one migrated database per run, function clients."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Set before anything reads settings: the suite never sees a developer's .env or real services.
TEST_ENV = {
    "COINFRS_ENV_FILE": "",
    "ENVIRONMENT": "test",
    "SECRET_KEY": "test-secret-key-" + "k" * 32,
    "ENCRYPTION_KEY": base64.b64encode(b"t" * 32).decode(),
    "BUS": "local",
    "CORS_ORIGINS": "https://app.coinfrs.test",
    "LOG_LEVEL": "INFO",
}
for _name in (
    "SENTRY_DSN",
    "KMS_KEY_NAME",
    "INSTANCE_CONNECTION_NAME",
    "SECRETS_BACKEND",
    "PUBSUB_EMULATOR_HOST",
    "CLOUD_TASKS_EMULATOR_HOST",
    "DATABASE_URL",
):
    os.environ.pop(_name, None)
os.environ.update(TEST_ENV)

# One SMTP sink for the whole run, so any route that mails (OTP) works under any test.
from infra.local.smtp_sink import SmtpSink  # noqa: E402 - after the environment is set

MAIL = SmtpSink().start()
os.environ.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(MAIL.port)})


class Providers:
    """The provider simulators every function of the run talks to (never the real services)."""

    def __init__(self) -> None:
        from infra.simulators import binance, fireblocks, google_oidc

        self.binance = binance.serve()
        self.fireblocks = fireblocks.serve()
        self.google = google_oidc.serve(
            google_oidc.GoogleOidcSimulator(
                client_id="coinfrs-suite.apps.googleusercontent.com",
                client_secret="suite-only-client-secret",
                redirect_uris=["https://app.coinfrs.test/auth/callback"],
            )
        )
        os.environ.update(
            {
                "BINANCE_SPOT_URL": self.binance.url,
                "BINANCE_USDM_URL": self.binance.url,
                "BINANCE_COINM_URL": self.binance.url,
                "FIREBLOCKS_URL": self.fireblocks.url,
                "GOOGLE_CLIENT_ID": "coinfrs-suite.apps.googleusercontent.com",
                "GOOGLE_CLIENT_SECRET": "suite-only-client-secret",
                "GOOGLE_DISCOVERY_URL": self.google.discovery_url,
                "OAUTH_REDIRECT_URIS": "https://app.coinfrs.test/auth/callback",
            }
        )

    def close(self) -> None:
        for running in (self.binance, self.fireblocks, self.google):
            running.close()


PROVIDERS = Providers()


def pytest_unconfigure(config: pytest.Config) -> None:
    MAIL.stop()
    PROVIDERS.close()


@pytest.fixture(scope="session")
def providers() -> Providers:
    """The Binance, Fireblocks and Google simulators the settings point at."""
    return PROVIDERS


def _reset_caches() -> None:
    from shared.config import get_settings
    from shared.db import engine

    get_settings.cache_clear()
    if engine.get_engine.cache_info().currsize:
        engine.get_engine().dispose()
    engine.get_engine.cache_clear()
    engine._session_factory.cache_clear()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL's, else a private embedded one under .local/."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    from infra.local.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(ROOT / ".local" / "test-postgres")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server of `server_url`; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def fresh_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """A factory of empty throwaway databases on the test server, all dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"coinfrs_test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return create_database(postgres_server_url, name)

    yield make
    for name in made:
        drop_database(postgres_server_url, name)


@pytest.fixture(scope="session", autouse=True)
def database_url(fresh_database) -> Iterator[str]:
    """This run's own database, migrated to head; DATABASE_URL points at it for every test."""
    from sqlalchemy import create_engine

    from shared.db import migrate

    url = fresh_database()
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    os.environ["DATABASE_URL"] = url
    _reset_caches()
    yield url
    _reset_caches()


@pytest.fixture
def engine(database_url: str):
    from shared.db.engine import get_engine

    return get_engine()


def function_client(target: str):
    """A test client for one Cloud Function target, loaded from main.py as the runtime does."""
    import functions_framework

    return functions_framework.create_app(target, str(ROOT / "main.py")).test_client()


@pytest.fixture(scope="session")
def api_app(database_url: str):
    """Every function target behind the local dev server's dispatcher (WSGI, in-process)."""
    from infra.local.devserver import build_app

    return build_app()


@pytest.fixture
def api(api_app):
    """A client of the whole API at /api/v1 (and /functions/<target>/)."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    return Client(api_app, Response)


class SignedInUser:
    """A user with a live session: `headers` carry its access token, `refresh_token` its cookie."""

    def __init__(self, email: str) -> None:
        from shared.config import bootstrap
        from shared.db.engine import unit_of_work
        from shared.services.auth import sign_in

        runtime = bootstrap()
        with unit_of_work() as db:
            session = sign_in(db, runtime.settings, runtime.tokens, email)
            self.id = session.user.id
        self.email = email
        self.access_token = session.access_token
        self.refresh_token = session.refresh_token
        self.headers = {"Authorization": f"Bearer {session.access_token}"}


@pytest.fixture
def sign_in_user(database_url: str) -> Callable[[str | None], SignedInUser]:
    """Signs in (creating on first use) a user by email, as a completed OTP or Google sign-in."""

    def make(email: str | None = None) -> SignedInUser:
        return SignedInUser(email or f"user-{uuid.uuid4().hex[:8]}@example.com")

    return make


@pytest.fixture
def make_data_source(database_url: str, sign_in_user) -> Callable[..., uuid.UUID]:
    """Inserts a data source (and the user, portfolio and entity it needs); returns its id.

    For tests of the layers below the API (staging, ETL): no credentials are sealed."""
    from shared.db.engine import unit_of_work
    from shared.db.models import DataSource, DataSourceStatus, Entity, Portfolio

    def make(type: str = "binance", owner: SignedInUser | None = None) -> uuid.UUID:
        owner = owner or sign_in_user()
        with unit_of_work() as db:
            portfolio = Portfolio(owner_id=owner.id, name=f"p-{uuid.uuid4().hex[:8]}")
            db.add(portfolio)
            db.flush()
            entity = Entity(owner_id=owner.id, portfolio_id=portfolio.id, name="e")
            db.add(entity)
            db.flush()
            source = DataSource(
                owner_id=owner.id,
                entity_id=entity.id,
                type=type,
                name=type,
                status=DataSourceStatus.ACTIVE,
            )
            db.add(source)
            db.flush()
            return source.id

    return make
