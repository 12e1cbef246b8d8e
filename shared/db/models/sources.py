"""Schema `canonical`, data sources: connected provider accounts and their sealed credentials."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base


class DataSourceStatus(enum.StrEnum):
    """`active`: read-only key, the pipeline runs it. `invalid`: the key was refused or gained a
    write permission; the pipeline skips it until a validate finds it read-only again."""

    ACTIVE = "active"
    INVALID = "invalid"


class DataSource(Base):
    """One connected provider account (a Binance key, a Fireblocks workspace) of one entity."""

    __tablename__ = "data_sources"
    __table_args__ = (
        Index("ix_data_sources_owner_page", "owner_id", "created_at", "id"),
        {"schema": "canonical"},
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.users.id"))
    entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("canonical.entities.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[DataSourceStatus] = mapped_column(
        Enum(
            DataSourceStatus,
            name="data_source_status",
            schema="canonical",
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    # What the provider reported the key may do (never a secret).
    permissions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    last_validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SealedCredential(Base):
    """A data source's credentials, sealed by envelope encryption (shared/security/vault.py).

    AES-256-GCM under a data key of its own; the data key is stored only wrapped by the key
    encryption key (Cloud KMS, or ENCRYPTION_KEY locally). Destroying the wrapped key
    (crypto-shredding) makes the ciphertext unreadable forever.
    """

    __tablename__ = "data_source_credentials"
    __table_args__ = ({"schema": "canonical"},)

    data_source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("canonical.data_sources.id"), unique=True
    )
    algorithm: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Which key-encryption key wrapped the data key, and which version of it.
    kek_id: Mapped[str] = mapped_column(String(512))
    kek_version: Mapped[str] = mapped_column(String(512))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
