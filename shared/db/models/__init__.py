"""Every table, imported here so Alembic and the tests see the whole metadata."""

from shared.db.models.base import Base
from shared.db.models.identity import OAuthState, OtpCode, RefreshToken, User, UserIdentity
from shared.db.models.ownership import Entity, Portfolio
from shared.db.models.sources import DataSource, DataSourceStatus, SealedCredential
from shared.db.models.staging import (
    ProcessingStatus,
    RawBinanceData,
    RawBinancePositionSnapshot,
    RawFireblocksData,
    RawFireblocksPositionSnapshot,
)

__all__ = [
    "Base",
    "DataSource",
    "DataSourceStatus",
    "Entity",
    "OAuthState",
    "OtpCode",
    "Portfolio",
    "ProcessingStatus",
    "RawBinanceData",
    "RawBinancePositionSnapshot",
    "RawFireblocksData",
    "RawFireblocksPositionSnapshot",
    "RefreshToken",
    "SealedCredential",
    "User",
    "UserIdentity",
]
