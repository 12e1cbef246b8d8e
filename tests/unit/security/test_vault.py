"""The vault seals with a fresh data key per call and refuses anything tampered, uniformly."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid

import pytest

from shared.errors import DependencyUnavailable
from shared.security.kek import LocalKek
from shared.security.vault import ALGORITHM, CredentialContext, Sealed, Vault, VaultError

PLAINTEXT = b'{"api_key":"PLAINTEXT-MARKER-abc","api_secret":"PLAINTEXT-MARKER-xyz"}'


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def vault() -> Vault:
    return Vault(LocalKek(_key()))


@pytest.fixture
def context() -> CredentialContext:
    return CredentialContext(uuid.uuid4(), "binance", uuid.uuid4())


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def _refused(vault: Vault, sealed: Sealed, context: CredentialContext) -> VaultError:
    with pytest.raises(VaultError) as caught:
        vault.open(sealed, context)
    # One message whatever failed, and never the secret.
    assert str(caught.value) == "credentials cannot be decrypted"
    assert b"PLAINTEXT-MARKER" not in str(caught.value).encode()
    return caught.value


def test_round_trip(vault, context):
    sealed = vault.seal(PLAINTEXT, context)

    assert sealed.algorithm == ALGORITHM
    assert sealed.kek_id == "local"
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == len(PLAINTEXT) + 16
    assert vault.open(sealed, context) == PLAINTEXT


def test_context_given_as_text_ids_is_the_same_context(vault, context):
    sealed = vault.seal(PLAINTEXT, context)
    as_text = CredentialContext(
        str(context.data_source_id).upper(), "binance", str(context.owner_id)
    )
    assert vault.open(sealed, as_text) == PLAINTEXT


def test_source_type_cannot_smuggle_the_separator():
    with pytest.raises(ValueError):
        CredentialContext(uuid.uuid4(), "binance|x", uuid.uuid4())


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: {"ciphertext": _flip(s.ciphertext, 0)}, id="ciphertext"),
        pytest.param(lambda s: {"ciphertext": _flip(s.ciphertext, -1)}, id="tag"),
        pytest.param(lambda s: {"ciphertext": s.ciphertext[:-16]}, id="tag-stripped"),
        pytest.param(lambda s: {"nonce": _flip(s.nonce, 5)}, id="nonce"),
        pytest.param(lambda s: {"nonce": s.nonce[:8]}, id="nonce-short"),
        pytest.param(lambda s: {"wrapped_key": _flip(s.wrapped_key, 20)}, id="wrapped-key"),
        pytest.param(lambda s: {"wrapped_key": _flip(s.wrapped_key, 0)}, id="wrapped-key-nonce"),
        pytest.param(lambda s: {"wrapped_key": None}, id="wrapped-key-destroyed"),
        pytest.param(lambda s: {"algorithm": "AES-128-GCM/v1"}, id="algorithm"),
        pytest.param(lambda s: {"kek_version": "0" * 16}, id="kek-version"),
        pytest.param(lambda s: {"kek_id": "projects/p/cryptoKeys/k"}, id="kek-id"),
    ],
)
def test_tampered_sealed_is_refused(vault, context, tamper):
    sealed = vault.seal(PLAINTEXT, context)
    _refused(vault, dataclasses.replace(sealed, **tamper(sealed)), context)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: {"data_source_id": uuid.uuid4()}, id="data-source"),
        pytest.param(lambda c: {"source_type": "fireblocks"}, id="type"),
        pytest.param(lambda c: {"owner_id": uuid.uuid4()}, id="owner"),
    ],
)
def test_another_context_is_refused(vault, context, change):
    sealed = vault.seal(PLAINTEXT, context)
    _refused(vault, sealed, dataclasses.replace(context, **change(context)))


def test_wrapped_key_is_bound_to_its_context(vault, context):
    # The data key wrap carries the same AAD: a wrapped key alone moved elsewhere is useless.
    sealed = vault.seal(PLAINTEXT, context)
    other = dataclasses.replace(context, data_source_id=uuid.uuid4())
    with pytest.raises(VaultError):
        vault.kek.unwrap(sealed.wrapped_key, other.aad, sealed.kek_version)
    assert len(vault.kek.unwrap(sealed.wrapped_key, context.aad, sealed.kek_version)) == 32


def test_a_wrapped_key_from_another_seal_is_refused(vault, context):
    first, second = vault.seal(PLAINTEXT, context), vault.seal(PLAINTEXT, context)
    _refused(vault, dataclasses.replace(first, wrapped_key=second.wrapped_key), context)


def test_another_kek_cannot_open(context):
    sealed = Vault(LocalKek(_key())).seal(PLAINTEXT, context)
    _refused(Vault(LocalKek(_key())), sealed, context)


def test_every_seal_uses_a_fresh_data_key_and_nonce(vault, context):
    first, second = vault.seal(PLAINTEXT, context), vault.seal(PLAINTEXT, context)

    assert first.nonce != second.nonce
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext
    one = vault.kek.unwrap(first.wrapped_key, context.aad, first.kek_version)
    two = vault.kek.unwrap(second.wrapped_key, context.aad, second.kek_version)
    assert one != two


def test_sealed_shows_no_plaintext_and_no_key_material(vault, context):
    sealed = vault.seal(PLAINTEXT, context)

    for text in (repr(sealed), str(sealed)):
        assert "PLAINTEXT-MARKER" not in text
        assert sealed.wrapped_key.hex() not in text
        assert repr(sealed.wrapped_key) not in text
    assert b"PLAINTEXT-MARKER" not in sealed.ciphertext


def test_a_kms_outage_is_not_reported_as_tampering(context):
    class DownKek:
        kek_id = "down"

        def wrap(self, data_key, aad):
            return b"w" * 40, "1"

        def unwrap(self, wrapped, aad, version):
            raise DependencyUnavailable("kms", "the key management service is unavailable")

    vault = Vault(DownKek())
    with pytest.raises(DependencyUnavailable):
        vault.open(vault.seal(PLAINTEXT, context), context)


def test_the_data_key_buffer_is_wiped_after_sealing(context):
    seen: list[bytearray] = []

    class RecordingKek(LocalKek):
        def wrap(self, data_key, aad):
            seen.append(data_key)
            return super().wrap(data_key, aad)

    Vault(RecordingKek(_key())).seal(PLAINTEXT, context)
    assert seen and seen[0] == bytearray(32)
