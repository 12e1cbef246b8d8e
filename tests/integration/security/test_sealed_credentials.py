"""Sealed credentials in PostgreSQL: no plaintext at rest, rows bound to their data source,
KEK rotation that only moves data keys, and crypto-shredding."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from sqlalchemy import select, text

from shared.db.engine import unit_of_work
from shared.db.models import DataSource
from shared.db.models.sources import SealedCredential
from shared.security.kek import LocalKek
from shared.security.rotate import rewrap_all
from shared.security.vault import Vault, VaultError

TABLE = "canonical.data_source_credentials"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def key_a() -> str:
    return _key()


@pytest.fixture
def vault(key_a) -> Vault:
    return Vault(LocalKek(key_a))


def _seal(vault: Vault, data_source_id: uuid.UUID, credentials: dict) -> None:
    with unit_of_work() as db:
        vault.seal_into(db, db.get(DataSource, data_source_id), credentials)


def _open(vault: Vault, data_source_id: uuid.UUID) -> dict:
    with unit_of_work() as db:
        return vault.open_row(db, db.get(DataSource, data_source_id))


def _row(data_source_id: uuid.UUID) -> SealedCredential:
    with unit_of_work() as db:
        return db.scalars(
            select(SealedCredential).where(SealedCredential.data_source_id == data_source_id)
        ).one()


def _places_holding(connection, secret: str) -> list[str]:
    """Every column of the credentials table, and every whole row as text, that holds `secret`."""
    columns = connection.execute(
        text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'canonical' AND table_name = 'data_source_credentials'"
        )
    ).all()
    assert {"ciphertext", "nonce", "wrapped_key", "algorithm", "kek_id"} <= {c for c, _ in columns}
    found = []
    for column, data_type in columns:
        if data_type == "bytea":
            condition = f"position(convert_to(:secret, 'UTF8') in {column}) > 0"
        elif data_type in ("text", "character varying", "jsonb", "json"):
            condition = f"position(:secret in {column}::text) > 0"
        else:
            continue
        hits = connection.scalar(
            text(f"SELECT count(*) FROM {TABLE} WHERE {condition}"), {"secret": secret}
        )
        if hits:
            found.append(column)
    # The whole row as PostgreSQL prints it (bytea in hex), in case a column was missed above.
    dump = "\n".join(connection.scalars(text(f"SELECT t::text FROM {TABLE} t")))
    if secret in dump or secret.encode().hex() in dump:
        found.append("row dump")
    return found


def test_seal_and_open_a_data_source(vault, make_data_source):
    source_id = make_data_source()
    credentials = {"api_key": "k-" + uuid.uuid4().hex, "api_secret": "s-" + uuid.uuid4().hex}

    _seal(vault, source_id, credentials)

    assert _open(vault, source_id) == credentials
    row = _row(source_id)
    assert row.algorithm == "AES-256-GCM/v1"
    assert row.kek_id == "local" and row.kek_version == vault.kek.current_version
    assert row.destroyed_at is None


def test_sealing_again_replaces_the_row(vault, make_data_source):
    source_id = make_data_source()
    _seal(vault, source_id, {"api_key": "first"})
    first = _row(source_id)

    _seal(vault, source_id, {"api_key": "second"})

    second = _row(source_id)
    assert second.id == first.id
    assert second.ciphertext != first.ciphertext
    assert _open(vault, source_id) == {"api_key": "second"}


def test_no_plaintext_at_rest(vault, make_data_source, engine):
    secret = f"PLANTED-SECRET-{uuid.uuid4()}"
    source_id = make_data_source()

    _seal(vault, source_id, {"api_key": secret, "api_secret": secret[::-1]})

    with engine.connect() as connection:
        assert _places_holding(connection, secret) == []
        assert _places_holding(connection, secret[::-1]) == []
        connection.rollback()
        # The scan itself must be able to see a plaintext: plant one and roll it back.
        with connection.begin() as transaction:
            connection.execute(
                text(
                    f"UPDATE {TABLE} SET nonce = convert_to(:s, 'UTF8') WHERE data_source_id = :id"
                ),
                {"s": secret, "id": source_id},
            )
            assert _places_holding(connection, secret) == ["nonce", "row dump"]
            transaction.rollback()
    assert _open(vault, source_id)["api_key"] == secret


@pytest.mark.parametrize("same_owner", [True, False], ids=["same-owner", "other-owner"])
def test_a_sealed_row_moved_to_another_data_source_does_not_open(
    vault, make_data_source, sign_in_user, engine, same_owner
):
    owner = sign_in_user()
    victim = make_data_source(owner=owner)
    thief = make_data_source(owner=owner if same_owner else sign_in_user())
    _seal(vault, victim, {"api_key": "victim-key"})
    _seal(vault, thief, {"api_key": "thief-key"})

    with engine.begin() as connection:
        connection.execute(
            text(
                f"UPDATE {TABLE} AS t SET ciphertext = v.ciphertext, nonce = v.nonce, "
                "wrapped_key = v.wrapped_key, kek_version = v.kek_version "
                f"FROM {TABLE} AS v WHERE t.data_source_id = :thief AND v.data_source_id = :victim"
            ),
            {"thief": thief, "victim": victim},
        )

    with pytest.raises(VaultError) as caught:
        _open(vault, thief)
    assert "victim-key" not in str(caught.value)
    assert _open(vault, victim) == {"api_key": "victim-key"}


def test_a_wrapped_key_alone_moved_to_another_row_does_not_open(vault, make_data_source, engine):
    owner_sources = [make_data_source(), make_data_source()]
    for source_id in owner_sources:
        _seal(vault, source_id, {"api_key": str(source_id)})
    with engine.begin() as connection:
        connection.execute(
            text(
                f"UPDATE {TABLE} AS t SET wrapped_key = v.wrapped_key "
                f"FROM {TABLE} AS v WHERE t.data_source_id = :a AND v.data_source_id = :b"
            ),
            {"a": owner_sources[0], "b": owner_sources[1]},
        )
    with pytest.raises(VaultError):
        _open(vault, owner_sources[0])


def test_rotation_rewraps_data_keys_only(key_a, vault, make_data_source, engine):
    sources = [make_data_source() for _ in range(3)]
    for number, source_id in enumerate(sources):
        _seal(vault, source_id, {"api_key": f"key-{number}"})
    before = {source_id: _row(source_id) for source_id in sources}
    destroyed = make_data_source()
    _seal(vault, destroyed, {"api_key": "gone"})
    with unit_of_work() as db:
        Vault.shred(db, destroyed)

    key_b = _key()
    rotating = LocalKek(key_b, [key_a])
    # Batches of 2: three rows take two batches and two commits.
    report = rewrap_all(engine, rotating, batch_size=2)

    # Rows of other tests are sealed under other keys: they can only count as failures here.
    assert (report.rewrapped, report.already_current) == (3, 0)
    assert report.destroyed_skipped >= 1
    for number, source_id in enumerate(sources):
        row, old = _row(source_id), before[source_id]
        assert row.kek_version == rotating.current_version != old.kek_version
        assert row.wrapped_key != old.wrapped_key
        assert (row.ciphertext, row.nonce) == (old.ciphertext, old.nonce)
        assert _open(Vault(rotating), source_id) == {"api_key": f"key-{number}"}

    # Idempotent: a second run finds nothing to do.
    again = rewrap_all(engine, Vault(rotating), batch_size=2)
    assert (again.rewrapped, again.already_current) == (0, 3)

    # Key A can now be forgotten.
    only_b = Vault(LocalKek(key_b))
    for number, source_id in enumerate(sources):
        assert _open(only_b, source_id) == {"api_key": f"key-{number}"}
    with pytest.raises(VaultError):
        _open(vault, sources[0])


def test_rotation_skips_rows_locked_by_a_concurrent_writer(key_a, vault, make_data_source, engine):
    sources = [make_data_source() for _ in range(2)]
    for source_id in sources:
        _seal(vault, source_id, {"api_key": str(source_id)})
    rotating = LocalKek(_key(), [key_a])

    with engine.connect() as other, other.begin():
        other.execute(
            text(f"SELECT 1 FROM {TABLE} WHERE data_source_id = :id FOR UPDATE"), {"id": sources[0]}
        )
        report = rewrap_all(engine, rotating)
        assert report.rewrapped == 1
        assert _row(sources[1]).kek_version == rotating.current_version

    assert _row(sources[0]).kek_version == vault.kek.current_version
    assert rewrap_all(engine, rotating).rewrapped == 1
    assert _row(sources[0]).kek_version == rotating.current_version


def test_shred_destroys_for_good_and_is_idempotent(vault, make_data_source):
    source_id = make_data_source()
    _seal(vault, source_id, {"api_key": "to-be-destroyed"})

    with unit_of_work() as db:
        assert Vault.shred(db, source_id) is True

    with pytest.raises(VaultError):
        _open(vault, source_id)
    row = _row(source_id)
    assert row.wrapped_key is None
    assert row.ciphertext == b"" and row.nonce == b""
    assert row.destroyed_at is not None

    with unit_of_work() as db:
        assert vault.shred(db, source_id) is False
    assert _row(source_id).destroyed_at == row.destroyed_at


def test_shred_seen_by_the_same_unit_of_work(vault, make_data_source):
    source_id = make_data_source()
    with unit_of_work() as db:
        source = db.get(DataSource, source_id)
        vault.seal_into(db, source, {"api_key": "x"})
        vault.shred(db, source_id)
        with pytest.raises(VaultError):
            vault.open_row(db, source)


def test_no_sealed_credentials_is_a_vault_error(vault, make_data_source):
    with pytest.raises(VaultError):
        _open(vault, make_data_source())
