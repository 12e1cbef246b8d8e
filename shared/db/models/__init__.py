"""Every table, imported here so Alembic and the tests see the whole metadata."""

from shared.db.models.base import Base
from shared.db.models.staging import (
    ProcessingStatus,
    RawBinanceData,
    RawBinancePositionSnapshot,
    RawFireblocksData,
    RawFireblocksPositionSnapshot,
)

__all__ = [
    "Base",
    "ProcessingStatus",
    "RawBinanceData",
    "RawBinancePositionSnapshot",
    "RawFireblocksData",
    "RawFireblocksPositionSnapshot",
]
