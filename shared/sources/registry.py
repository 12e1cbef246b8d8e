"""The registry: every provider Coinfrs can connect, one line each."""

from __future__ import annotations

from shared.sources.common.base import SourceType

_REGISTRY: dict[str, SourceType] = {}
_loaded = False


def register(source: SourceType) -> SourceType:
    _REGISTRY[source.type] = source
    return source


def source_types() -> dict[str, SourceType]:
    """Every registered provider, by type."""
    global _loaded
    if not _loaded:
        # Importing one provider's package (a test, a function) registers it alone; load all.
        _load()
        _loaded = True
    return dict(_REGISTRY)


def _load() -> None:
    # Each provider package registers itself in its own __init__ (credential forms only: light).
    import shared.sources.binance
    import shared.sources.fireblocks  # noqa: F401
