"""Fixtures of the Binance tests: the Binance simulator over HTTP and settings aimed at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

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


@pytest.fixture
def binance_account(binance_server: RunningSimulator, binance_settings: Settings, make_data_source):
    """A factory of simulated accounts: (seed, days, ...) -> Account with a fresh data source."""
    from infra.simulators.binance_history import History
    from shared.sources.binance.credentials import HmacCredentials
    from tests.integration.sources.binance.ingestion_fixtures import Account, FakeTime

    simulator = binance_server.simulator
    simulator.reset()
    made: list[Any] = []

    def make(seed: int | str = 1, days: int = 10, history: History | None = None) -> Account:
        history = history or History(seed, days=days)
        api_key, secret = simulator.add_hmac_key("read_only", history=history)
        clock = FakeTime()
        simulator.feeds.clock = clock.time
        simulator.now = history.end + timedelta(minutes=30)
        account = Account(
            simulator,
            binance_settings,
            history,
            HmacCredentials(api_key=api_key, api_secret=secret),
            make_data_source(),
            clock,
        )
        made.append(account)
        return account

    yield make
    simulator.now = None
    simulator.reset()
