"""Binance as a Coinfrs source: its registry line (credential forms now, the client on demand)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.sources.binance.credentials import Ed25519Credentials, HmacCredentials
from shared.sources.common.base import SourceType
from shared.sources.registry import register

if TYPE_CHECKING:
    from pydantic import BaseModel

    from shared.config import Settings
    from shared.sources.common.base import SourceClient


def _client(settings: Settings, credentials: BaseModel) -> SourceClient:
    # python-binance costs ~250 ms to import (it pulls aiohttp and websockets): only the
    # functions that talk to Binance pay for it.
    from shared.sources.binance.client import Client

    return Client(settings, credentials)


def _ingest(*args: Any, **kwargs: Any) -> Any:
    from shared.sources.binance.ingestion import ingest

    return ingest(*args, **kwargs)


def _etl(*args: Any, **kwargs: Any) -> Any:
    from shared.sources.binance.etl import run_etl

    return run_etl(*args, **kwargs)


SOURCE = register(
    SourceType(
        "binance",
        "Binance",
        (HmacCredentials, Ed25519Credentials),
        client=_client,
        ingest=_ingest,
        etl=_etl,
    )
)

__all__ = ["SOURCE", "Ed25519Credentials", "HmacCredentials"]
