"""Fixtures of the Binance tests: the Binance simulator over HTTP and settings aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.simulators.binance import BinanceSimulator, RunningSimulator, serve
from shared.config import Settings, load_settings


@pytest.fixture(scope="session")
def binance_server() -> Iterator[RunningSimulator]:
    """One simulator for the session on a free 127.0.0.1 port (stopping one takes ~0.5 s)."""
    with serve(BinanceSimulator(seed="coinfrs-tests")) as running:
        yield running


@pytest.fixture
def binance_simulator(binance_server: RunningSimulator) -> BinanceSimulator:
    """The running simulator with its clock true and its request log empty."""
    binance_server.simulator.reset()
    return binance_server.simulator


@pytest.fixture
def binance_settings(binance_server: RunningSimulator) -> Settings:
    """Settings whose three Binance hosts are the simulator."""
    url = binance_server.url
    return load_settings(binance_spot_url=url, binance_usdm_url=url, binance_coinm_url=url)
