"""Key rotation: re-wrap every stored data key under the current key-encryption key version."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models.sources import DataSource, SealedCredential
from shared.security.kek import KeyEncryptionKey, VaultError
from shared.security.vault import CredentialContext, Vault, wipe

# Named explicitly: under `python -m` this module is `__main__`.
log = logging.getLogger("shared.security.rotate")

DEFAULT_BATCH_SIZE = 100


@dataclass(frozen=True)
class RotationReport:
    """How many data keys moved, were already current, were destroyed, or could not unwrap."""

    rewrapped: int = 0
    already_current: int = 0
    destroyed_skipped: int = 0
    # Rows whose data key does not unwrap (tampered, or sealed under another KEK): left as is.
    failed: int = 0


def rewrap_all(
    sessions: Engine | sessionmaker[Session],
    vault_or_kek: Vault | KeyEncryptionKey,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RotationReport:
    """Unwrap each live data key with the version that wrapped it and wrap it again with the
    current version. The credentials themselves are never decrypted: ciphertext and nonce
    do not change, only `wrapped_key` and `kek_version`.

    Batches are locked `FOR UPDATE SKIP LOCKED` and committed one by one, so a run can be
    interrupted, repeated, or run next to the API: a row locked by a concurrent seal or shred is
    skipped (that writer leaves it current or destroyed). Running it again changes nothing.
    """
    factory = (
        sessionmaker(bind=sessions, expire_on_commit=False)
        if isinstance(sessions, Engine)
        else sessions
    )
    kek = vault_or_kek.kek if isinstance(vault_or_kek, Vault) else vault_or_kek
    # A local KEK knows its current version; for KMS it is whatever the latest wrap returned
    # (the primary version), so rows already there need no KMS call at all.
    current: str | None = getattr(kek, "current_version", None)
    rewrapped = already_current = failed = 0
    last_id = None
    while True:
        with factory.begin() as db:
            statement = (
                select(SealedCredential, DataSource.type, DataSource.owner_id)
                .join(DataSource, DataSource.id == SealedCredential.data_source_id)
                .where(
                    SealedCredential.destroyed_at.is_(None),
                    SealedCredential.wrapped_key.is_not(None),
                )
                .order_by(SealedCredential.id)
                .limit(batch_size)
                .with_for_update(of=SealedCredential, skip_locked=True)
            )
            if last_id is not None:
                statement = statement.where(SealedCredential.id > last_id)
            batch = db.execute(statement).all()
            if not batch:
                break
            for row, source_type, owner_id in batch:
                if row.kek_id == kek.kek_id and row.kek_version == current:
                    already_current += 1
                    continue
                context = CredentialContext(row.data_source_id, source_type, owner_id)
                outcome = _rewrap(kek, row, context)
                if outcome is None:
                    failed += 1
                    continue
                current, moved = outcome
                if moved:
                    rewrapped += 1
                else:
                    already_current += 1
            last_id = batch[-1][0].id
    with factory() as db:
        destroyed = db.scalar(
            select(func.count())
            .select_from(SealedCredential)
            .where(
                or_(
                    SealedCredential.destroyed_at.is_not(None),
                    SealedCredential.wrapped_key.is_(None),
                )
            )
        )
    report = RotationReport(rewrapped, already_current, destroyed or 0, failed)
    log.info(
        "data keys re-wrapped",
        extra={"kek_id": kek.kek_id, "kek_version": current, **report.__dict__},
    )
    return report


def _rewrap(
    kek: KeyEncryptionKey, row: SealedCredential, context: CredentialContext
) -> tuple[str, bool] | None:
    """Re-wrap `row`'s data key in place: the version now wrapping it and whether the row
    changed; None when the data key does not unwrap."""
    where = {"data_source_id": str(row.data_source_id), "kek_version": row.kek_version}
    if row.kek_id != kek.kek_id:
        log.error("data key sealed under another key-encryption key", extra=where)
        return None
    aad = context.aad
    try:
        data_key = bytearray(kek.unwrap(row.wrapped_key, aad, row.kek_version))
    except VaultError:
        log.error("data key does not unwrap; left as is", extra=where)
        return None
    try:
        wrapped, version = kek.wrap(data_key, aad)
    finally:
        wipe(data_key)
    # Same version (a KMS primary that did not change): the stored wrap is as good, keep it.
    if version == row.kek_version:
        return version, False
    row.wrapped_key, row.kek_version = wrapped, version
    return version, True


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.security.rotate`: re-wrap with the KEK the settings select."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)

    from shared.config import ConfigurationError, bootstrap
    from shared.db.engine import get_engine
    from shared.security.kek import kek_from_settings

    try:
        kek = kek_from_settings(bootstrap().settings)
        report = rewrap_all(get_engine(), kek, args.batch_size)
    except ConfigurationError as error:
        print(f"rotation not started: {error}", file=sys.stderr)  # noqa: T201
        return 2
    print(  # noqa: T201
        f"kek={kek.kek_id} rewrapped={report.rewrapped} already_current={report.already_current}"
        f" destroyed_skipped={report.destroyed_skipped} failed={report.failed}"
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
