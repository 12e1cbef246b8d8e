"""Data sources through the `datasources` function against the provider simulators over HTTP."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import select, text

from shared.db.models import DataSource, SealedCredential
from tests.conftest import function_client

PLANTED = "PLANTED-SECRET-"


@pytest.fixture
def datasources():
    return function_client("datasources")


@pytest.fixture
def owner(sign_in_user):
    """A signed-in user with one entity; `.entity_id` is where data sources go."""
    from shared.services import portfolios

    user = sign_in_user()
    portfolio = portfolios.create_portfolio(user.id, "Fund", None)
    user.entity_id = portfolios.create_entity(
        user.id, {"portfolio_id": portfolio.id, "name": "Fund Ltd"}
    ).id
    return user


def _connect(client, user, type, credentials, name="main"):
    body = {
        "data": {
            "entity_id": str(user.entity_id),
            "type": type,
            "name": name,
            "credentials": credentials,
        }
    }
    return client.post("/api/v1/datasources/", json=body, headers=user.headers)


def _binance_hmac(providers, profile):
    api_key, secret = providers.binance.simulator.add_hmac_key(profile)
    return api_key, {"api_key": api_key, "api_secret": secret}


def _count(engine, user):
    with engine.connect() as connection:
        return connection.execute(select(DataSource.id).where(DataSource.owner_id == user.id)).all()


def test_types_describe_each_form(datasources, owner):
    body = datasources.get("/api/v1/datasources/types", headers=owner.headers).get_json()
    types = {item["type"]: item for item in body["data"]}
    assert set(types) == {"binance", "fireblocks"}
    binance_forms = types["binance"]["credential_schema"]["oneOf"]
    assert {frozenset(form["properties"]) for form in binance_forms} == {
        frozenset({"api_key", "api_secret"}),
        frozenset({"api_key", "private_key"}),
    }
    fireblocks = types["fireblocks"]["credential_schema"]
    assert set(fireblocks["properties"]) == {"api_key", "private_key"}
    for form in [*binance_forms, fireblocks]:
        for name, field in form["properties"].items():
            assert field.get("title") and field.get("description"), name
        secret = form["properties"].get("api_secret") or form["properties"]["private_key"]
        assert secret["format"] == "password" and secret["writeOnly"] is True


def test_a_read_only_binance_key_is_connected_and_sealed(datasources, owner, providers, engine):
    _, credentials = _binance_hmac(providers, "read_only")
    response = _connect(datasources, owner, "binance", credentials)
    data = response.get_json()["data"]
    assert response.status_code == 201
    assert data["status"] == "active" and data["type"] == "binance"
    assert data["permissions"]["enableReading"] is True
    assert "credentials" not in data and credentials["api_secret"] not in response.get_data(
        as_text=True
    )
    with engine.connect() as connection:
        sealed = connection.execute(
            select(SealedCredential).where(SealedCredential.data_source_id == uuid.UUID(data["id"]))
        ).one()
    assert sealed.algorithm == "AES-256-GCM/v1" and sealed.wrapped_key
    listed = datasources.get(
        f"/api/v1/datasources/?entity_id={owner.entity_id}", headers=owner.headers
    ).get_json()["data"]
    assert [item["id"] for item in listed] == [data["id"]]


def test_an_ed25519_binance_key_is_accepted(datasources, owner, providers):
    api_key, pem = providers.binance.simulator.add_ed25519_key("read_only")
    response = _connect(datasources, owner, "binance", {"api_key": api_key, "private_key": pem})
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("profile", "named"),
    [
        ("trading", "enableSpotAndMarginTrading"),
        ("withdrawals", "enableWithdrawals"),
        ("internal_transfer", "enableInternalTransfer"),
        ("universal_transfer", "permitsUniversalTransfer"),
        ("futures", "enableFutures"),
        ("unknown_future_flag", "enableQuantumTrading"),
    ],
)
def test_binance_write_permissions_are_refused_by_name(
    datasources, owner, providers, engine, profile, named
):
    _, credentials = _binance_hmac(providers, profile)
    response = _connect(datasources, owner, "binance", credentials)
    error = response.get_json()["error"]
    assert response.status_code == 422 and error["code"] == "VALIDATION_ERROR"
    assert named in error["details"]["credentials"]
    assert named in error["message"]
    assert _count(engine, owner) == []


@pytest.mark.parametrize(
    ("profile", "status", "code"),
    [
        ("no_reading", 422, "VALIDATION_ERROR"),
        ("rejected", 422, "VALIDATION_ERROR"),
        ("server_error", 503, "SERVICE_UNAVAILABLE"),
        ("rate_limited", 429, "RATE_LIMIT_ERROR"),
    ],
)
def test_binance_refusals_and_outages_store_nothing(
    datasources, owner, providers, engine, profile, status, code
):
    _, credentials = _binance_hmac(providers, profile)
    response = _connect(datasources, owner, "binance", credentials)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    assert _count(engine, owner) == []


def test_a_wrong_binance_secret_is_a_422_saying_binance_refused(datasources, owner, providers):
    api_key, _ = _binance_hmac(providers, "read_only")
    response = _connect(datasources, owner, "binance", {"api_key": api_key, "api_secret": "x" * 64})
    error = response.get_json()["error"]
    assert response.status_code == 422 and "Binance rejected" in error["message"]


@pytest.fixture(scope="module")
def fireblocks_pem():
    from infra.simulators.fireblocks import generate_private_key_pem

    return generate_private_key_pem()


@pytest.mark.parametrize(
    ("profile", "status"),
    [("viewer", 201), ("editor", 422), ("admin", 422), ("rejected", 422), ("server_error", 503)],
)
def test_fireblocks_roles(datasources, owner, providers, engine, fireblocks_pem, profile, status):
    api_key, pem = providers.fireblocks.simulator.add_key(profile, private_key_pem=fireblocks_pem)
    response = _connect(datasources, owner, "fireblocks", {"api_key": api_key, "private_key": pem})
    body = response.get_json()
    assert response.status_code == status, body
    if status == 201:
        assert body["data"]["status"] == "active"
    elif profile in ("editor", "admin"):
        assert body["error"]["details"]["credentials"]
        assert _count(engine, owner) == []


def test_malformed_credentials_are_named_without_echo(datasources, owner):
    response = _connect(datasources, owner, "binance", {"api_key": "k", "secret": PLANTED})
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert PLANTED not in response.get_data(as_text=True)
    assert error["details"]["credentials"]
    response = _connect(datasources, owner, "kraken", {})
    assert response.status_code == 422 and "kraken" in response.get_json()["error"]["message"]


def test_validate_marks_a_key_that_gained_a_write_permission_invalid(datasources, owner, providers):
    api_key, credentials = _binance_hmac(providers, "read_only")
    created = _connect(datasources, owner, "binance", credentials).get_json()["data"]
    path = f"/api/v1/datasources/{created['id']}/validate"
    assert datasources.post(path, headers=owner.headers).get_json()["data"]["status"] == "active"
    providers.binance.simulator.set_profile(api_key, "withdrawals")
    revalidated = datasources.post(path, headers=owner.headers).get_json()["data"]
    assert revalidated["status"] == "invalid"
    assert "enableWithdrawals" in revalidated["permissions"]["credentials"]
    providers.binance.simulator.set_profile(api_key, "read_only")
    assert datasources.post(path, headers=owner.headers).get_json()["data"]["status"] == "active"
    providers.binance.simulator.set_profile(api_key, "server_error")
    outage = datasources.post(path, headers=owner.headers)
    assert outage.status_code == 503
    detail = datasources.get(f"/api/v1/datasources/{created['id']}", headers=owner.headers)
    assert detail.get_json()["data"]["status"] == "active"  # an outage changes nothing


def test_delete_destroys_the_credentials(datasources, owner, providers, engine):
    _, credentials = _binance_hmac(providers, "read_only")
    created = _connect(datasources, owner, "binance", credentials).get_json()["data"]
    path = f"/api/v1/datasources/{created['id']}"
    assert datasources.delete(path, headers=owner.headers).status_code == 200
    assert datasources.get(path, headers=owner.headers).status_code == 404
    assert datasources.post(f"{path}/validate", headers=owner.headers).status_code == 404
    with engine.connect() as connection:
        sealed = connection.execute(
            select(SealedCredential).where(
                SealedCredential.data_source_id == uuid.UUID(created["id"])
            )
        ).one()
    assert sealed.wrapped_key is None and sealed.destroyed_at is not None


def test_an_entity_with_data_sources_cannot_be_deleted(datasources, owner, providers):
    _, credentials = _binance_hmac(providers, "read_only")
    _connect(datasources, owner, "binance", credentials)
    response = function_client("entities").delete(
        f"/api/v1/entities/{owner.entity_id}", headers=owner.headers
    )
    assert response.status_code == 409


def test_two_users_never_see_each_others_data_sources(datasources, owner, sign_in_user, providers):
    _, credentials = _binance_hmac(providers, "read_only")
    created = _connect(datasources, owner, "binance", credentials).get_json()["data"]
    bob = sign_in_user()
    path = f"/api/v1/datasources/{created['id']}"
    for method, url in (("GET", path), ("DELETE", path), ("POST", f"{path}/validate")):
        response = datasources.open(url, method=method, headers=bob.headers)
        assert response.status_code == 404, (method, url)
    # Bob cannot connect a key to Alice's entity, nor filter by it.
    _, more = _binance_hmac(providers, "read_only")
    bob.entity_id = owner.entity_id
    assert _connect(datasources, bob, "binance", more).status_code == 404
    listed = datasources.get(
        f"/api/v1/datasources/?entity_id={owner.entity_id}", headers=bob.headers
    )
    assert listed.status_code == 404
    assert datasources.get("/api/v1/datasources/", headers=bob.headers).get_json()["data"] == []
    # Alice's source is untouched.
    assert datasources.get(path, headers=owner.headers).status_code == 200


def test_no_secret_in_replies_logs_or_the_database(
    datasources, owner, providers, engine, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    planted = PLANTED + uuid.uuid4().hex
    api_key, _ = providers.binance.simulator.add_hmac_key("read_only", secret=planted)
    replies = [_connect(datasources, owner, "binance", {"api_key": api_key, "api_secret": planted})]
    created = replies[0].get_json()["data"]
    replies.append(
        datasources.post(f"/api/v1/datasources/{created['id']}/validate", headers=owner.headers)
    )
    replies.append(datasources.get("/api/v1/datasources/", headers=owner.headers))
    # and a refusal, whose message is built from provider answers
    providers.binance.simulator.set_profile(api_key, "trading")
    replies.append(
        datasources.post(f"/api/v1/datasources/{created['id']}/validate", headers=owner.headers)
    )
    for reply in replies:
        assert planted not in reply.get_data(as_text=True)
    assert planted not in caplog.text + capsys.readouterr().out
    with engine.connect() as connection:
        dump = connection.execute(
            text("SELECT string_agg(t::text, '|') FROM canonical.data_source_credentials t")
        ).scalar()
        hits = connection.execute(
            text(
                "SELECT count(*) FROM canonical.data_source_credentials "
                "WHERE position(convert_to(:s, 'UTF8') in ciphertext) > 0 "
                "OR position(convert_to(:s, 'UTF8') in coalesce(wrapped_key, '')) > 0"
            ),
            {"s": planted},
        ).scalar()
        sources = connection.execute(
            text("SELECT string_agg(t::text, '|') FROM canonical.data_sources t")
        ).scalar()
    assert hits == 0
    assert planted not in dump and planted not in sources
    assert planted.encode().hex() not in dump
