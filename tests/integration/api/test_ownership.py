"""Portfolios, entities and the profile: CRUD through the functions, scoped to the caller."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from shared.db.models import Entity, Portfolio
from tests.conftest import function_client


@pytest.fixture
def portfolios():
    return function_client("portfolios")


@pytest.fixture
def entities():
    return function_client("entities")


@pytest.fixture
def users():
    return function_client("users")


def _data(response, status=200):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["success"] is True
    return body["data"]


def _error(response, status, code):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"]["code"] == code
    return body["error"]


def test_profile_read_and_update(users, sign_in_user):
    alice = sign_in_user("Alice@Example.com")
    me = _data(users.get("/api/v1/users/me", headers=alice.headers))
    assert me["email"] == "alice@example.com" and me["display_name"] is None
    updated = _data(
        users.put(
            "/api/v1/users/me", json={"data": {"display_name": "Alice A."}}, headers=alice.headers
        )
    )
    assert updated["display_name"] == "Alice A." and updated["id"] == me["id"]
    _error(
        users.put("/api/v1/users/me", json={"data": {"email": "x@y.z"}}, headers=alice.headers),
        422,
        "VALIDATION_ERROR",
    )


def test_every_route_needs_sign_in(portfolios, entities, users):
    for client, path in (
        (portfolios, "/api/v1/portfolios/"),
        (entities, "/api/v1/entities/"),
        (users, "/api/v1/users/me"),
    ):
        _error(client.get(path), 401, "AUTHENTICATION_ERROR")
        _error(
            client.get(path, headers={"Authorization": "Bearer not-a-jwt"}),
            401,
            "AUTHENTICATION_ERROR",
        )


def test_portfolio_crud_with_audit_fields(portfolios, sign_in_user, engine):
    alice = sign_in_user()
    created = _data(
        portfolios.post(
            "/api/v1/portfolios/",
            json={"data": {"name": "  Fund I ", "description": "flagship"}},
            headers=alice.headers,
        ),
        201,
    )
    assert created["name"] == "Fund I" and created["description"] == "flagship"
    path = f"/api/v1/portfolios/{created['id']}"
    assert _data(portfolios.get(path, headers=alice.headers)) == created
    replaced = _data(
        portfolios.put(path, json={"data": {"name": "Fund One"}}, headers=alice.headers)
    )
    assert replaced["name"] == "Fund One" and replaced["description"] is None
    assert replaced["updated_at"] > created["updated_at"]
    with engine.connect() as connection:
        row = connection.execute(
            select(Portfolio.created_by, Portfolio.updated_by, Portfolio.owner_id).where(
                Portfolio.id == uuid.UUID(created["id"])
            )
        ).one()
    assert row == (alice.id, alice.id, alice.id)
    _data(portfolios.delete(path, headers=alice.headers))
    _error(portfolios.get(path, headers=alice.headers), 404, "NOT_FOUND")
    assert _data(portfolios.get("/api/v1/portfolios/", headers=alice.headers)) == []
    _error(portfolios.delete(path, headers=alice.headers), 404, "NOT_FOUND")


def test_names_are_unique_among_live_portfolios(portfolios, sign_in_user):
    alice = sign_in_user()
    body = {"data": {"name": "Treasury"}}
    first = _data(portfolios.post("/api/v1/portfolios/", json=body, headers=alice.headers), 201)
    _error(
        portfolios.post("/api/v1/portfolios/", json=body, headers=alice.headers), 409, "CONFLICT"
    )
    _data(portfolios.delete(f"/api/v1/portfolios/{first['id']}", headers=alice.headers))
    _data(portfolios.post("/api/v1/portfolios/", json=body, headers=alice.headers), 201)
    # Another user may use the same name.
    _data(portfolios.post("/api/v1/portfolios/", json=body, headers=sign_in_user().headers), 201)


def test_pagination_walks_every_portfolio_once(portfolios, sign_in_user):
    alice = sign_in_user()
    for i in range(5):
        _data(
            portfolios.post(
                "/api/v1/portfolios/", json={"data": {"name": f"P{i}"}}, headers=alice.headers
            ),
            201,
        )
    names, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = portfolios.get(f"/api/v1/portfolios/{query}", headers=alice.headers)
        names += [item["name"] for item in _data(response)]
        cursor = response.get_json()["meta"]["next_cursor"]
        if cursor is None:
            break
    assert names == [f"P{i}" for i in range(5)]
    _error(
        portfolios.get("/api/v1/portfolios/?cursor=garbage", headers=alice.headers),
        422,
        "VALIDATION_ERROR",
    )


def test_entity_crud_and_validation(portfolios, entities, sign_in_user):
    alice = sign_in_user()
    fund = _data(
        portfolios.post("/api/v1/portfolios/", json={"data": {"name": "F"}}, headers=alice.headers),
        201,
    )
    other = _data(
        portfolios.post("/api/v1/portfolios/", json={"data": {"name": "G"}}, headers=alice.headers),
        201,
    )
    entity = _data(
        entities.post(
            "/api/v1/entities/",
            json={
                "data": {"portfolio_id": fund["id"], "name": "Coinfrs Ltd", "jurisdiction": "GB"}
            },
            headers=alice.headers,
        ),
        201,
    )
    assert entity["functional_currency"] == "USD" and entity["legal_name"] is None
    for bad in (
        {"jurisdiction": "gb"},
        {"functional_currency": "usd"},
        {"name": ""},
        {"colour": "red"},
    ):
        error = _error(
            entities.post(
                "/api/v1/entities/",
                json={"data": {"portfolio_id": fund["id"], "name": "X", **bad}},
                headers=alice.headers,
            ),
            422,
            "VALIDATION_ERROR",
        )
        assert error["details"]
    path = f"/api/v1/entities/{entity['id']}"
    moved = _data(
        entities.put(
            path,
            json={
                "data": {"portfolio_id": other["id"], "name": "Ltd", "functional_currency": "EUR"}
            },
            headers=alice.headers,
        )
    )
    assert (moved["portfolio_id"], moved["functional_currency"]) == (other["id"], "EUR")
    listed = _data(
        entities.get(f"/api/v1/entities/?portfolio_id={other['id']}", headers=alice.headers)
    )
    assert [item["id"] for item in listed] == [entity["id"]]
    assert (
        _data(entities.get(f"/api/v1/entities/?portfolio_id={fund['id']}", headers=alice.headers))
        == []
    )
    # A portfolio holding an entity cannot be deleted out from under it.
    _error(
        portfolios.delete(f"/api/v1/portfolios/{other['id']}", headers=alice.headers),
        409,
        "CONFLICT",
    )
    _data(entities.delete(path, headers=alice.headers))
    _error(entities.get(path, headers=alice.headers), 404, "NOT_FOUND")
    _data(portfolios.delete(f"/api/v1/portfolios/{other['id']}", headers=alice.headers))


def test_malformed_ids_are_not_found(portfolios, entities, sign_in_user):
    alice = sign_in_user()
    _error(portfolios.get("/api/v1/portfolios/not-a-uuid", headers=alice.headers), 404, "NOT_FOUND")
    _error(entities.delete("/api/v1/entities/123", headers=alice.headers), 404, "NOT_FOUND")


def test_two_users_never_see_each_other(portfolios, entities, sign_in_user, engine):
    alice, bob = sign_in_user(), sign_in_user()
    fund = _data(
        portfolios.post(
            "/api/v1/portfolios/", json={"data": {"name": "A's fund"}}, headers=alice.headers
        ),
        201,
    )
    ltd = _data(
        entities.post(
            "/api/v1/entities/",
            json={"data": {"portfolio_id": fund["id"], "name": "A Ltd"}},
            headers=alice.headers,
        ),
        201,
    )
    bobs = _data(
        portfolios.post(
            "/api/v1/portfolios/", json={"data": {"name": "B's fund"}}, headers=bob.headers
        ),
        201,
    )
    p_path, e_path = f"/api/v1/portfolios/{fund['id']}", f"/api/v1/entities/{ltd['id']}"
    as_bob = {"headers": bob.headers}

    _error(portfolios.get(p_path, **as_bob), 404, "NOT_FOUND")
    _error(portfolios.put(p_path, json={"data": {"name": "mine"}}, **as_bob), 404, "NOT_FOUND")
    _error(portfolios.delete(p_path, **as_bob), 404, "NOT_FOUND")
    _error(entities.get(e_path, **as_bob), 404, "NOT_FOUND")
    _error(
        entities.put(e_path, json={"data": {"portfolio_id": bobs["id"], "name": "x"}}, **as_bob),
        404,
        "NOT_FOUND",
    )
    _error(entities.delete(e_path, **as_bob), 404, "NOT_FOUND")
    # Bob can neither attach an entity to Alice's portfolio nor move his own into it.
    _error(
        entities.post(
            "/api/v1/entities/",
            json={"data": {"portfolio_id": fund["id"], "name": "intruder"}},
            **as_bob,
        ),
        404,
        "NOT_FOUND",
    )
    his = _data(
        entities.post(
            "/api/v1/entities/",
            json={"data": {"portfolio_id": bobs["id"], "name": "B Ltd"}},
            **as_bob,
        ),
        201,
    )
    _error(
        entities.put(
            f"/api/v1/entities/{his['id']}",
            json={"data": {"portfolio_id": fund["id"], "name": "B Ltd"}},
            **as_bob,
        ),
        404,
        "NOT_FOUND",
    )
    # Alice's portfolio as a filter is a 404, not an empty list; lists hold only his own.
    _error(entities.get(f"/api/v1/entities/?portfolio_id={fund['id']}", **as_bob), 404, "NOT_FOUND")
    assert [p["id"] for p in _data(portfolios.get("/api/v1/portfolios/", **as_bob))] == [bobs["id"]]
    assert [e["id"] for e in _data(entities.get("/api/v1/entities/", **as_bob))] == [his["id"]]
    # Nothing of Alice's changed.
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(Portfolio.name).where(Portfolio.id == uuid.UUID(fund["id"]))
            ).scalar()
            == "A's fund"
        )
        assert (
            connection.execute(
                select(Entity.deleted_at).where(Entity.id == uuid.UUID(ltd["id"]))
            ).scalar()
            is None
        )
