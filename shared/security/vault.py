"""Envelope encryption of data-source credentials: seal, open, store and crypto-shred them."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models.sources import DataSource, SealedCredential
from shared.security.kek import KeyEncryptionKey, VaultError

__all__ = ["ALGORITHM", "CredentialContext", "Sealed", "Vault", "VaultError", "wipe"]

log = logging.getLogger(__name__)

ALGORITHM = "AES-256-GCM/v1"
NONCE_BYTES = 12
DATA_KEY_BYTES = 32
_AAD_PREFIX = "coinfrs:credentials:v1"
# One message for every failure to open: which check failed would help an attacker, not a user.
_CANNOT_DECRYPT = "credentials cannot be decrypted"


@dataclass(frozen=True)
class CredentialContext:
    """Who the credentials belong to; bound into both ciphertexts as associated data, so a
    sealed blob (or its wrapped key) copied to another row, type or owner will not open."""

    data_source_id: uuid.UUID
    source_type: str
    owner_id: uuid.UUID

    def __post_init__(self) -> None:
        # The AAD is `|`-joined: a separator inside a part would make two contexts collide.
        if not self.source_type or "|" in self.source_type:
            raise ValueError("source_type must be non-empty and free of '|'")

    @classmethod
    def of(cls, data_source: DataSource) -> CredentialContext:
        return cls(data_source.id, data_source.type, data_source.owner_id)

    @property
    def aad(self) -> bytes:
        # uuid.UUID(str(...)) gives one canonical spelling whether ids arrive as UUIDs or text.
        parts = [
            _AAD_PREFIX,
            str(uuid.UUID(str(self.data_source_id))),
            self.source_type,
            str(uuid.UUID(str(self.owner_id))),
        ]
        return "|".join(parts).encode()


@dataclass(frozen=True)
class Sealed:
    """What is stored: nothing here is secret without the key-encryption key."""

    algorithm: str
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)  # AES-GCM output: ciphertext followed by the 16-byte tag
    wrapped_key: bytes | None = field(repr=False)
    kek_id: str
    kek_version: str

    @classmethod
    def of(cls, row: SealedCredential) -> Sealed:
        return cls(
            row.algorithm, row.nonce, row.ciphertext, row.wrapped_key, row.kek_id, row.kek_version
        )


def wipe(buffer: bytearray) -> None:
    # Best effort only: Python cannot promise no other copy exists (AESGCM keeps its own inside
    # OpenSSL, bytes() conversions for KMS make immutable ones), but this one will not linger.
    for index in range(len(buffer)):
        buffer[index] = 0


class Vault:
    """Seals credentials under a fresh data key each time; the data key is kept only wrapped."""

    def __init__(self, kek: KeyEncryptionKey) -> None:
        self.kek = kek

    def seal(self, plaintext: bytes, context: CredentialContext) -> Sealed:
        aad = context.aad
        data_key = bytearray(AESGCM.generate_key(DATA_KEY_BYTES * 8))
        try:
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
            # The same AAD on the wrap: a wrapped key moved to another row will not unwrap.
            wrapped_key, version = self.kek.wrap(data_key, aad)
        finally:
            wipe(data_key)
        return Sealed(ALGORITHM, nonce, ciphertext, wrapped_key, self.kek.kek_id, version)

    def open(self, sealed: Sealed, context: CredentialContext) -> bytes:
        """The plaintext, or VaultError when anything about `sealed` or `context` is off.

        DependencyUnavailable (KMS down) passes through: an outage is not tampering.
        """
        where = {"data_source_id": str(context.data_source_id), "kek_id": sealed.kek_id}
        if sealed.algorithm != ALGORITHM:
            self._refuse("unknown algorithm", where)
        if sealed.kek_id != self.kek.kek_id:
            self._refuse("sealed under another key-encryption key", where)
        if sealed.wrapped_key is None:
            self._refuse("data key destroyed", where)
        if len(sealed.nonce) != NONCE_BYTES:
            self._refuse("malformed nonce", where)
        aad = context.aad
        try:
            data_key = bytearray(self.kek.unwrap(sealed.wrapped_key, aad, sealed.kek_version))
        except VaultError:
            self._refuse("data key does not unwrap", where)
        try:
            if len(data_key) != DATA_KEY_BYTES:
                self._refuse("data key has the wrong length", where)
            try:
                return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
            except (InvalidTag, ValueError):
                self._refuse("ciphertext does not authenticate", where)
        finally:
            wipe(data_key)

    @staticmethod
    def _refuse(reason: str, where: dict[str, str]) -> NoReturn:
        # The reason goes to operators' logs only; callers get the one uniform message.
        log.warning("credentials refused to open", extra={"reason": reason, **where})
        raise VaultError(_CANNOT_DECRYPT)

    def seal_into(
        self, db: Session, data_source: DataSource, credentials: dict[str, Any]
    ) -> SealedCredential:
        """Seal `credentials` for `data_source`, creating or replacing its row."""
        # Sorted keys: the same credentials always serialise to the same plaintext.
        plaintext = json.dumps(credentials, sort_keys=True, separators=(",", ":")).encode()
        sealed = self.seal(plaintext, CredentialContext.of(data_source))
        values = {
            "algorithm": sealed.algorithm,
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
            "wrapped_key": sealed.wrapped_key,
            "kek_id": sealed.kek_id,
            "kek_version": sealed.kek_version,
            "destroyed_at": None,
        }
        # One statement, so two concurrent seals of one data source cannot both insert.
        statement = (
            insert(SealedCredential)
            .values(data_source_id=data_source.id, **values)
            .on_conflict_do_update(index_elements=[SealedCredential.data_source_id], set_=values)
            .returning(SealedCredential)
        )
        row = db.scalars(statement, execution_options={"populate_existing": True}).one()
        log.info(
            "credentials sealed",
            extra={
                "data_source_id": str(data_source.id),
                "kek_id": sealed.kek_id,
                "kek_version": sealed.kek_version,
            },
        )
        return row

    def open_row(self, db: Session, data_source: DataSource) -> dict[str, Any]:
        """The credentials of `data_source`; VaultError when absent, destroyed or tampered."""
        row = db.scalars(
            select(SealedCredential).where(SealedCredential.data_source_id == data_source.id)
        ).one_or_none()
        if row is None:
            raise VaultError("no credentials are sealed for this data source")
        if row.destroyed_at is not None or row.wrapped_key is None:
            raise VaultError("credentials were destroyed")
        plaintext = self.open(Sealed.of(row), CredentialContext.of(data_source))
        try:
            credentials = json.loads(plaintext)
        except ValueError:
            # `from None`: a JSONDecodeError carries the whole document it failed on.
            raise VaultError(_CANNOT_DECRYPT) from None
        if not isinstance(credentials, dict):
            raise VaultError(_CANNOT_DECRYPT)
        return credentials

    @staticmethod
    def shred(db: Session, data_source_id: uuid.UUID) -> bool:
        """Crypto-shred: drop the wrapped data key, blank the ciphertext. Idempotent; True when
        this call destroyed something.

        The old values survive in dead tuples until VACUUM, and in WAL and backups for their
        retention; without the data key they stay unreadable, which is what shredding relies on.
        """
        result = db.execute(
            update(SealedCredential)
            .where(
                SealedCredential.data_source_id == data_source_id,
                SealedCredential.destroyed_at.is_(None),
            )
            .values(wrapped_key=None, ciphertext=b"", nonce=b"", destroyed_at=func.now())
            .execution_options(synchronize_session="fetch")
        )
        destroyed = bool(result.rowcount)
        if destroyed:
            log.info("credentials destroyed", extra={"data_source_id": str(data_source_id)})
        return destroyed
