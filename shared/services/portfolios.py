"""Portfolios and entities: a user's own, and nobody else's (another user's id is NotFound)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db.engine import unit_of_work
from shared.db.models import DataSource, Entity, Portfolio
from shared.errors import Conflict
from shared.http.envelope import Page
from shared.http.pagination import paginate
from shared.services.ownership import owned


def _portfolio(db: Session, owner: uuid.UUID, portfolio_id: uuid.UUID) -> Portfolio:
    return owned(db, Portfolio, owner, portfolio_id, "portfolio")


def _entity(db: Session, owner: uuid.UUID, entity_id: uuid.UUID) -> Entity:
    return owned(db, Entity, owner, entity_id, "entity")


def _save(db: Session, row: Any, clash: str) -> None:
    """Flush `row`; a live sibling with the same name is a Conflict, not a 500."""
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        raise Conflict(clash, {"name": "already used"}) from None
    db.refresh(row)


def create_portfolio(owner: uuid.UUID, name: str, description: str | None) -> Portfolio:
    with unit_of_work() as db:
        portfolio = Portfolio(
            owner_id=owner, name=name, description=description, created_by=owner, updated_by=owner
        )
        _save(db, portfolio, "you already have a portfolio with this name")
        return portfolio


def list_portfolios(owner: uuid.UUID, limit: int, cursor: str | None) -> Page:
    with unit_of_work() as db:
        statement = select(Portfolio).where(
            Portfolio.owner_id == owner, Portfolio.deleted_at.is_(None)
        )
        return paginate(db, statement, [Portfolio.created_at, Portfolio.id], limit, cursor)


def get_portfolio(owner: uuid.UUID, portfolio_id: uuid.UUID) -> Portfolio:
    with unit_of_work() as db:
        return _portfolio(db, owner, portfolio_id)


def update_portfolio(
    owner: uuid.UUID, portfolio_id: uuid.UUID, name: str, description: str | None
) -> Portfolio:
    with unit_of_work() as db:
        portfolio = _portfolio(db, owner, portfolio_id)
        portfolio.name, portfolio.description, portfolio.updated_by = name, description, owner
        _save(db, portfolio, "you already have a portfolio with this name")
        return portfolio


def delete_portfolio(owner: uuid.UUID, portfolio_id: uuid.UUID) -> None:
    with unit_of_work() as db:
        portfolio = _portfolio(db, owner, portfolio_id)
        has_entities = db.execute(
            select(exists().where(Entity.portfolio_id == portfolio.id, Entity.deleted_at.is_(None)))
        ).scalar()
        if has_entities:
            # Hiding a portfolio's entities with it would hide their books too: say so instead.
            raise Conflict("the portfolio still has entities; delete or move them first")
        portfolio.deleted_at, portfolio.updated_by = datetime.now(UTC), owner


def create_entity(owner: uuid.UUID, fields: dict[str, Any]) -> Entity:
    with unit_of_work() as db:
        _portfolio(db, owner, fields["portfolio_id"])
        entity = Entity(owner_id=owner, created_by=owner, updated_by=owner, **fields)
        _save(db, entity, "the portfolio already has an entity with this name")
        return entity


def list_entities(
    owner: uuid.UUID, portfolio_id: uuid.UUID | None, limit: int, cursor: str | None
) -> Page:
    with unit_of_work() as db:
        statement = select(Entity).where(Entity.owner_id == owner, Entity.deleted_at.is_(None))
        if portfolio_id is not None:
            _portfolio(db, owner, portfolio_id)  # another user's portfolio is a 404, not []
            statement = statement.where(Entity.portfolio_id == portfolio_id)
        return paginate(db, statement, [Entity.created_at, Entity.id], limit, cursor)


def get_entity(owner: uuid.UUID, entity_id: uuid.UUID) -> Entity:
    with unit_of_work() as db:
        return _entity(db, owner, entity_id)


def update_entity(owner: uuid.UUID, entity_id: uuid.UUID, fields: dict[str, Any]) -> Entity:
    with unit_of_work() as db:
        entity = _entity(db, owner, entity_id)
        _portfolio(db, owner, fields["portfolio_id"])
        for name, value in fields.items():
            setattr(entity, name, value)
        entity.updated_by = owner
        _save(db, entity, "the portfolio already has an entity with this name")
        return entity


def delete_entity(owner: uuid.UUID, entity_id: uuid.UUID) -> None:
    with unit_of_work() as db:
        entity = _entity(db, owner, entity_id)
        connected = db.execute(
            select(
                exists().where(DataSource.entity_id == entity.id, DataSource.deleted_at.is_(None))
            )
        ).scalar()
        if connected:
            raise Conflict("the entity still has data sources; disconnect them first")
        entity.deleted_at, entity.updated_by = datetime.now(UTC), owner
