"""What every provider supplies: credential forms, a client, and a read-only permission check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from shared.config import Settings


@dataclass(frozen=True)
class PermissionReport:
    """What a key may do, as the provider says. A key is acceptable only when it can read and
    `write_permissions` is empty; unknown capabilities count as writes (fail closed)."""

    can_read: bool
    write_permissions: tuple[str, ...]
    # Everything the provider reported, as reported (no secrets): shown as `permissions`.
    reported: dict[str, Any] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return self.can_read and not self.write_permissions


class SourceClient(Protocol):
    """A provider client bound to one set of decrypted credentials, for one call."""

    def check_permissions(self) -> PermissionReport:
        """Ask the provider what the key may do, with read-only requests only.

        Raises ProviderRefused when the provider rejects the key and ProviderUnavailable when it
        cannot be reached or answers with a server error."""
        ...


@dataclass(frozen=True)
class SourceType:
    """One registry line: how a provider is onboarded and reached."""

    type: str
    display_name: str
    # The credential forms; a request must match exactly one (unknown fields refused).
    credential_models: tuple[type[BaseModel], ...]
    # (settings, validated credentials) -> client; imported lazily so a provider's code loads only
    # where it is used.
    client: Callable[[Settings, BaseModel], SourceClient]
    # History into staging, and staging into the canonical ledger (None: not supported yet).
    # ingest(settings, engine, data_source_id, credentials, *, start, end, progress) -> report
    ingest: Callable[..., Any] | None = None
    # etl(engine, settings, data_source_id) -> report
    etl: Callable[..., Any] | None = None
