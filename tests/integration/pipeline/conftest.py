"""Fixtures of the pipeline tests: every function served over HTTP, the local bus delivering."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from infra.simulators.binance_history import History
from shared.messaging.local import LocalBus


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class Pipeline:
    """The functions at `base` and the bus that chains them (drain it to wait for a run)."""

    base: str
    bus: LocalBus


@pytest.fixture
def pipeline(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    from infra.local.devserver import build_app
    from shared.config import bootstrap

    server = make_server("127.0.0.1", 0, build_app(), threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    runtime = bootstrap()  # every function module shares this one
    _fake_time_for_ingestion(monkeypatch)
    settings = runtime.settings.model_copy(update={"functions_base_url": f"{base}/functions"})
    bus = LocalBus(settings, backoff_seconds=0.01)
    monkeypatch.setattr(runtime, "settings", settings)
    monkeypatch.setattr(runtime, "_bus", bus)
    try:
        yield Pipeline(base, bus)
    finally:
        bus.drain(timeout=60)
        bus.close()
        server.shutdown()
        thread.join(timeout=5)


class FakeTime:
    """Time that passes only when slept on: rate-limit pacing and backoff cost no real time."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _fake_time_for_ingestion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Binance ingestion paces itself on the provider's weight budget, as it must; here it
    and the simulator's weight meter share a fake clock so a sync takes no wall time."""
    import dataclasses
    import functools

    from shared.sources import registry

    fake = FakeTime()
    binance = registry.source_types()["binance"]
    paced = functools.partial(binance.ingest, sleep=fake.sleep, clock=fake.time)
    monkeypatch.setitem(registry._REGISTRY, "binance", dataclasses.replace(binance, ingest=paced))
    from tests.conftest import PROVIDERS

    monkeypatch.setattr(PROVIDERS.binance.simulator.feeds, "clock", fake.time)


@pytest.fixture
def fake_ingestion_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingestion's pacing on a fake clock, for chains served without the `pipeline` fixture."""
    _fake_time_for_ingestion(monkeypatch)


@pytest.fixture
def own_database(database_url: str, fresh_database) -> Iterator[str]:
    """A database of this test alone, for steps that act on every data source there is (the
    daily fan-out): other tests' data sources in the session's database would join the run."""
    import os

    from sqlalchemy import create_engine

    from shared.db import migrate
    from tests.conftest import _reset_caches

    url = fresh_database()
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    os.environ["DATABASE_URL"] = url
    _reset_caches()
    try:
        yield url
    finally:
        os.environ["DATABASE_URL"] = database_url
        _reset_caches()


@dataclass
class Connected:
    """A Binance data source whose key reads a simulated history, and its owner's API client."""

    api: httpx.Client
    data_source_id: str
    history: History
    api_key: str


@pytest.fixture
def connect_binance(providers, sign_in_user) -> Iterator[Callable[[str], Connected]]:
    """Connects, through the API at `base`, a Binance data source reading a 6-day history."""
    from shared.services import portfolios

    simulator = providers.binance.simulator
    clients: list[httpx.Client] = []

    def connect(base: str) -> Connected:
        history = History(f"pipeline-{len(clients)}", days=6)
        simulator.now = history.end + timedelta(minutes=30)
        owner = sign_in_user()
        portfolio = portfolios.create_portfolio(owner.id, "Fund", None)
        entity = portfolios.create_entity(owner.id, {"portfolio_id": portfolio.id, "name": "Ltd"})
        api_key, secret = simulator.add_hmac_key("read_only", history=history)
        api = httpx.Client(base_url=f"{base}/api/v1", headers=owner.headers, timeout=60)
        clients.append(api)
        credentials = {"api_key": api_key, "api_secret": secret}
        created = api.post(
            "/datasources/",
            json={
                "data": {
                    "entity_id": str(entity.id),
                    "type": "binance",
                    "name": "main",
                    "credentials": credentials,
                }
            },
        )
        assert created.status_code == 201, created.json()
        return Connected(api, created.json()["data"]["id"], history, api_key)

    yield connect
    simulator.now = None
    for api in clients:
        api.close()
