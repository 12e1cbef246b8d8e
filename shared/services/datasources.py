"""Data sources: onboard a provider key only when read-only, keep it sealed, re-validate it."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import Runtime
from shared.db.engine import unit_of_work
from shared.db.models import DataSource, DataSourceStatus, Entity
from shared.errors import ProviderRefused, ValidationFailed, field_errors
from shared.http.envelope import Page
from shared.http.pagination import paginate
from shared.services.ownership import owned
from shared.sources.common.base import PermissionReport, SourceType
from shared.sources.registry import source_types

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypeDescription:
    type: str
    display_name: str
    credential_schema: dict[str, Any]


def describe_types() -> list[TypeDescription]:
    """Every provider with the JSON Schema of its credential form(s)."""
    described = []
    for source in source_types().values():
        schemas = [model.model_json_schema() for model in source.credential_models]
        schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
        described.append(TypeDescription(source.type, source.display_name, schema))
    return described


def _source_type(name: str) -> SourceType:
    types = source_types()
    if name not in types:
        raise ValidationFailed(
            f"unknown data source type {name!r}", {"type": f"one of {sorted(types)}"}
        )
    return types[name]


def _credentials(source: SourceType, raw: dict[str, Any]) -> BaseModel:
    """The one credential form `raw` fills; the errors of the closest form otherwise."""
    failures: list[ValidationError] = []
    for model in source.credential_models:
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            failures.append(error)
    closest = min(failures, key=lambda error: error.error_count())
    raise ValidationFailed(
        f"credentials do not fit the {source.display_name} form",
        {"credentials": field_errors(closest, "credentials")},
    )


def _plain(credentials: BaseModel) -> dict[str, Any]:
    """The credentials as plain strings, for sealing (SecretStr revealed only here)."""
    return {
        name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
        for name, value in credentials
    }


def _refuse_unless_read_only(source: SourceType, report: PermissionReport) -> None:
    if not report.can_read:
        raise ProviderRefused(
            f"the {source.display_name} key cannot read; enable reading and try again",
            {"credentials": ["reading is not enabled"]},
        )
    if report.write_permissions:
        raise ProviderRefused(
            f"the {source.display_name} key can do more than read: "
            f"{', '.join(report.write_permissions)}. Create a read-only key.",
            {"credentials": list(report.write_permissions)},
        )


def _entity(db: Session, owner: uuid.UUID, entity_id: uuid.UUID) -> Entity:
    return owned(db, Entity, owner, entity_id, "entity")


def _data_source(db: Session, owner: uuid.UUID, data_source_id: uuid.UUID) -> DataSource:
    return owned(db, DataSource, owner, data_source_id, "data source")


def create(
    runtime: Runtime,
    owner: uuid.UUID,
    entity_id: uuid.UUID,
    type: str,
    name: str,
    raw_credentials: dict[str, Any],
) -> DataSource:
    """Check the key with the provider (read-only requests), then store it sealed.

    The provider is asked before any row exists: a refused key or an outage stores nothing.
    """
    with unit_of_work() as db:
        _entity(db, owner, entity_id)
    source = _source_type(type)
    credentials = _credentials(source, raw_credentials)
    report = source.client(runtime.settings, credentials).check_permissions()
    _refuse_unless_read_only(source, report)
    with unit_of_work() as db:
        _entity(db, owner, entity_id)  # still the caller's after the provider round trip
        row = DataSource(
            id=uuid.uuid4(),
            owner_id=owner,
            entity_id=entity_id,
            type=type,
            name=name,
            status=DataSourceStatus.ACTIVE,
            permissions=report.reported,
            last_validated_at=datetime.now(UTC),
            created_by=owner,
            updated_by=owner,
        )
        db.add(row)
        db.flush()
        runtime.vault.seal_into(db, row, _plain(credentials))
        db.refresh(row)
    log.info("data source connected", extra={"data_source_id": str(row.id), "type": type})
    return row


def list_data_sources(
    owner: uuid.UUID, entity_id: uuid.UUID | None, limit: int, cursor: str | None
) -> Page:
    with unit_of_work() as db:
        statement = select(DataSource).where(
            DataSource.owner_id == owner, DataSource.deleted_at.is_(None)
        )
        if entity_id is not None:
            _entity(db, owner, entity_id)  # another user's entity is a 404, not []
            statement = statement.where(DataSource.entity_id == entity_id)
        return paginate(db, statement, [DataSource.created_at, DataSource.id], limit, cursor)


def get(owner: uuid.UUID, data_source_id: uuid.UUID) -> DataSource:
    with unit_of_work() as db:
        return _data_source(db, owner, data_source_id)


def credentials_of(runtime: Runtime, db: Session, row: DataSource) -> BaseModel:
    """The decrypted credentials of `row`, validated: in memory for the one call that needs them."""
    return _credentials(_source_type(row.type), runtime.vault.open_row(db, row))


def validate(runtime: Runtime, owner: uuid.UUID, data_source_id: uuid.UUID) -> DataSource:
    """Ask the provider again; a key that gained a write permission or was revoked becomes
    `invalid` (the pipeline skips it). A provider outage changes nothing."""
    with unit_of_work() as db:
        row = _data_source(db, owner, data_source_id)
        source = _source_type(row.type)
        credentials = credentials_of(runtime, db, row)
    try:
        report = source.client(runtime.settings, credentials).check_permissions()
        _refuse_unless_read_only(source, report)
        status, permissions = DataSourceStatus.ACTIVE, report.reported
    except ProviderRefused as refusal:
        status = DataSourceStatus.INVALID
        permissions = {"refused": refusal.message, **refusal.details}
        log.warning(
            "data source key no longer acceptable",
            extra={"data_source_id": str(data_source_id), "reason": refusal.message},
        )
    with unit_of_work() as db:
        row = _data_source(db, owner, data_source_id)
        row.status, row.permissions = status, permissions
        row.last_validated_at, row.updated_by = datetime.now(UTC), owner
        db.flush()
        db.refresh(row)
        return row


def delete(runtime: Runtime, owner: uuid.UUID, data_source_id: uuid.UUID) -> DataSource:
    """Soft delete, and destroy the credentials for good (crypto-shredding)."""
    with unit_of_work() as db:
        row = _data_source(db, owner, data_source_id)
        row.deleted_at, row.updated_by = datetime.now(UTC), owner
        runtime.vault.shred(db, row.id)
        db.flush()
        return row
