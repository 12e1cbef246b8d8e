"""Fireblocks: registers the provider (credential form and a lazily imported client)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.sources.common.base import SourceType
from shared.sources.fireblocks.credentials import ApiKeyCredentials
from shared.sources.registry import register

if TYPE_CHECKING:
    from pydantic import BaseModel

    from shared.config import Settings
    from shared.sources.fireblocks.client import Client


def _client(settings: Settings, credentials: BaseModel) -> Client:
    # httpx and PyJWT load only here: the registry (and /datasources/types) needs the form alone.
    from shared.sources.fireblocks.client import Client

    if not isinstance(credentials, ApiKeyCredentials):
        raise TypeError(f"Fireblocks takes ApiKeyCredentials, not {type(credentials).__name__}")
    return Client(settings, credentials)


SOURCE = register(SourceType("fireblocks", "Fireblocks", (ApiKeyCredentials,), client=_client))
