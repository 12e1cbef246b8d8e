"""The `health` function, driven through functions-framework as Cloud Functions runs it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from shared.db import migrate
from tests.conftest import _reset_caches, function_client


@pytest.fixture
def health():
    return function_client("health")


def test_liveness_is_an_envelope(health):
    response = health.get("/api/v1/health/", headers={"X-Request-ID": "probe-1"})
    body = response.get_json()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["data"]["status"] == "ok"
    assert body["meta"]["request_id"] == "probe-1"
    assert response.headers["X-Request-ID"] == "probe-1"


def test_database_check_reports_the_revision(health):
    body = health.get("/api/v1/health/db").get_json()
    assert body["data"] == {"status": "ok", "database": "ok", "revision": migrate.head()}


@pytest.fixture
def database_pointed_at(monkeypatch):
    """Point the process at another database URL for one test, then restore."""

    def point(url: str) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        _reset_caches()

    yield point
    monkeypatch.undo()
    _reset_caches()


def test_unreachable_database_is_503_naming_it(health, database_pointed_at):
    database_pointed_at("postgresql+pg8000://nobody:sekrit-pass@127.0.0.1:1/none")
    response = health.get("/api/v1/health/db")
    body = response.get_json()
    assert response.status_code == 503
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["error"]["details"]["dependency"] == "database"
    assert "sekrit-pass" not in response.get_data(as_text=True)


def test_unmigrated_database_is_503(health, database_pointed_at, fresh_database):
    url = fresh_database()
    database_pointed_at(url)
    body = health.get("/api/v1/health/db").get_json()
    assert body["error"]["details"] == {
        "dependency": "database",
        "current_revision": None,
        "expected_revision": migrate.head(),
    }
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    assert health.get("/api/v1/health/db").status_code == 200


def test_queue_check_on_the_local_bus(health):
    body = health.get("/api/v1/health/queue").get_json()
    assert body["data"] == {"status": "ok", "bus": "local"}


def test_queue_check_names_an_unreachable_pubsub(health, monkeypatch):
    from functions.api import health as module
    from shared.config import Runtime, load_settings

    settings = load_settings(
        bus="gcp", pubsub_emulator_host="127.0.0.1:1", cloud_tasks_emulator_host="127.0.0.1:1"
    )
    monkeypatch.setattr(module, "runtime", Runtime(settings))
    response = health.get("/api/v1/health/queue")
    assert response.status_code == 503
    assert response.get_json()["error"]["details"]["dependency"] in ("pubsub", "cloud_tasks")

