"""Fixtures of the pipeline tests: every function served over HTTP, the local bus delivering."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

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
