"""Every table, imported here so Alembic and the tests see the whole metadata."""

from shared.db.models.base import Base
from shared.db.models.identity import OAuthState, OtpCode, RefreshToken, User, UserIdentity
from shared.db.models.ingestion import IngestionCursor, KnownSymbol, StreamCoverage
from shared.db.models.jobs import Job, JobStatus
from shared.db.models.ledger import (
    Account,
    Movement,
    MovementKind,
    PositionSnapshot,
    Transaction,
    TransactionType,
)
from shared.db.models.ownership import Entity, Portfolio
from shared.db.models.reconciliation import Alert, ReconciliationResult, ReconciliationRun
from shared.db.models.sources import DataSource, DataSourceStatus, SealedCredential
from shared.db.models.staging import (
    ProcessingStatus,
    RawBinanceData,
    RawBinancePositionSnapshot,
    RawFireblocksData,
    RawFireblocksPositionSnapshot,
)

__all__ = [
    "Account",
    "Alert",
    "Base",
    "DataSource",
    "DataSourceStatus",
    "Entity",
    "IngestionCursor",
    "Job",
    "JobStatus",
    "KnownSymbol",
    "Movement",
    "MovementKind",
    "OAuthState",
    "OtpCode",
    "Portfolio",
    "PositionSnapshot",
    "ProcessingStatus",
    "RawBinanceData",
    "RawBinancePositionSnapshot",
    "RawFireblocksData",
    "RawFireblocksPositionSnapshot",
    "ReconciliationResult",
    "ReconciliationRun",
    "RefreshToken",
    "SealedCredential",
    "StreamCoverage",
    "Transaction",
    "TransactionType",
    "User",
    "UserIdentity",
]
