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
