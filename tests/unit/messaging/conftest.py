"""Messaging test fixtures: settings, and the test targets served over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.emulators import ServedFunctions, serve_functions
from shared.config import Settings, load_settings

TARGETS = Path(__file__).with_name("targets.py")
# URL segment -> function in targets.py; two segments share record_event for the filter test.
MOUNTS = {
    "record_event": "record_event",
    "binance_events": "record_event",
    "fireblocks_events": "record_event",
    "record_push": "record_push",
    "flaky_push": "flaky_push",
    "failing_event": "failing_event",
    "record_task": "record_task",
    "failing_task": "failing_task",
}


def _settings(**overrides: Any) -> Settings:
    return load_settings(
        secret_key="k" * 32,
        encryption_key=base64.b64encode(bytes(32)).decode(),
        environment="test",
        gcp_project="coinfrs-test",
        **overrides,
    )


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Valid test Settings with the given overrides (the environment and .env still apply)."""
    return _settings


@pytest.fixture(scope="module")
def served_targets() -> Iterator[ServedFunctions]:
    with serve_functions(TARGETS, MOUNTS) as served:
        yield served


@pytest.fixture
def targets(served_targets: ServedFunctions) -> ServedFunctions:
    """The served targets with nothing recorded yet."""
    for module in served_targets.modules.values():
        module.RECEIVED.clear()
        module.CALLS.clear()
    return served_targets
