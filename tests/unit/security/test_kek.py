"""Key-encryption keys: the local AES key with rotation, and Cloud KMS behind a patched client."""

from __future__ import annotations

import base64
import os
import uuid
from types import SimpleNamespace
from unittest import mock

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import kms

from shared.config import ConfigurationError, get_settings
from shared.errors import DependencyUnavailable
from shared.security.kek import CloudKmsKek, LocalKek, VaultError, kek_from_settings, key_version
from shared.security.vault import CredentialContext, Vault

KEY_NAME = "projects/coinfrs-test/locations/europe-west1/keyRings/coinfrs/cryptoKeys/credentials"
AAD = b"coinfrs:credentials:v1|a|binance|b"
DATA_KEY = AESGCM.generate_key(256)


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# --- LocalKek -----------------------------------------------------------------------------------


def test_local_wrap_unwrap():
    kek = LocalKek(_key())
    wrapped, version = kek.wrap(DATA_KEY, AAD)

    assert version == kek.current_version and len(version) == 16
    assert DATA_KEY not in wrapped
    assert kek.unwrap(wrapped, AAD, version) == DATA_KEY
    assert kek.kek_id == "local"


def test_local_version_is_a_fingerprint_of_the_key():
    key = _key()
    assert LocalKek(key).current_version == LocalKek(key).current_version
    assert LocalKek(key).current_version == key_version(base64.b64decode(key))
    assert LocalKek(key).current_version != LocalKek(_key()).current_version


def test_local_wraps_differ_each_time():
    kek = LocalKek(_key())
    assert kek.wrap(DATA_KEY, AAD)[0] != kek.wrap(DATA_KEY, AAD)[0]


def test_local_refuses_wrong_aad_and_tampering():
    kek = LocalKek(_key())
    wrapped, version = kek.wrap(DATA_KEY, AAD)

    with pytest.raises(VaultError):
        kek.unwrap(wrapped, AAD + b"x", version)
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(VaultError):
        kek.unwrap(bytes(tampered), AAD, version)
    with pytest.raises(VaultError):
        kek.unwrap(wrapped[:5], AAD, version)


def test_local_rotation_keeps_old_wraps_readable_and_wraps_with_the_new_key():
    old, new = _key(), _key()
    before = LocalKek(old)
    wrapped, old_version = before.wrap(DATA_KEY, AAD)

    after = LocalKek(new, [old])
    rewrapped, new_version = after.wrap(DATA_KEY, AAD)

    assert new_version != old_version
    assert new_version == LocalKek(new).current_version
    assert after.unwrap(wrapped, AAD, old_version) == DATA_KEY
    assert after.unwrap(rewrapped, AAD, new_version) == DATA_KEY
    # Once the old key is forgotten, what it wrapped is gone; the new wraps are not.
    forgotten = LocalKek(new)
    with pytest.raises(VaultError):
        forgotten.unwrap(wrapped, AAD, old_version)
    assert forgotten.unwrap(rewrapped, AAD, new_version) == DATA_KEY


def test_local_rejects_a_malformed_key():
    with pytest.raises(ConfigurationError):
        LocalKek(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigurationError):
        LocalKek(_key(), ["not base64!"])


# --- CloudKmsKek --------------------------------------------------------------------------------


class FakeKms:
    """Stands in for Cloud KMS: really AES-GCM-encrypts under per-version keys, with the AAD."""

    def __init__(self) -> None:
        self.versions = {1: AESGCM.generate_key(256)}
        self.primary = 1
        self.requests: list[tuple[str, dict]] = []

    def rotate(self) -> None:
        self.primary = max(self.versions) + 1
        self.versions[self.primary] = AESGCM.generate_key(256)

    def encrypt(self, request, **kwargs):
        self.requests.append(("encrypt", request))
        if request["name"] != KEY_NAME:
            raise exceptions.NotFound("no such key")
        nonce = os.urandom(12)
        body = AESGCM(self.versions[self.primary]).encrypt(
            nonce, request["plaintext"], request["additional_authenticated_data"]
        )
        # Like KMS, the ciphertext names the version that made it.
        return kms.EncryptResponse(
            name=f"{KEY_NAME}/cryptoKeyVersions/{self.primary}",
            ciphertext=self.primary.to_bytes(4, "big") + nonce + body,
        )

    def decrypt(self, request, **kwargs):
        self.requests.append(("decrypt", request))
        blob = request["ciphertext"]
        version = int.from_bytes(blob[:4], "big")
        try:
            plaintext = AESGCM(self.versions[version]).decrypt(
                blob[4:16], blob[16:], request["additional_authenticated_data"]
            )
        except (KeyError, InvalidTag):
            raise exceptions.InvalidArgument(
                "Decryption failed: the ciphertext is invalid."
            ) from None
        return kms.DecryptResponse(plaintext=plaintext, used_primary=version == self.primary)


@pytest.fixture
def fake_kms() -> FakeKms:
    return FakeKms()


@pytest.fixture
def kms_client(fake_kms):
    """A real client (no network at construction) whose RPCs are answered by FakeKms."""
    client = kms.KeyManagementServiceClient(credentials=AnonymousCredentials())
    with (
        mock.patch.object(client, "encrypt", side_effect=fake_kms.encrypt) as encrypt,
        mock.patch.object(client, "decrypt", side_effect=fake_kms.decrypt) as decrypt,
    ):
        client.encrypt_mock, client.decrypt_mock = encrypt, decrypt
        yield client


def test_kms_wrap_unwrap_sends_name_and_aad(kms_client, fake_kms):
    kek = CloudKmsKek(KEY_NAME, client=kms_client)
    wrapped, version = kek.wrap(DATA_KEY, AAD)

    assert version == f"{KEY_NAME}/cryptoKeyVersions/1"
    assert kek.kek_id == KEY_NAME
    assert kek.unwrap(wrapped, AAD, version) == DATA_KEY
    (_, encrypt), (_, decrypt) = fake_kms.requests
    assert encrypt == {
        "name": KEY_NAME,
        "plaintext": DATA_KEY,
        "additional_authenticated_data": AAD,
    }
    # Decrypt goes to the CryptoKey, not the version: KMS finds the version in the ciphertext.
    assert decrypt == {
        "name": KEY_NAME,
        "ciphertext": wrapped,
        "additional_authenticated_data": AAD,
    }
    assert kms_client.encrypt_mock.call_args.kwargs["timeout"] > 0


def test_kms_refuses_wrong_aad_as_vault_error(kms_client):
    kek = CloudKmsKek(KEY_NAME, client=kms_client)
    wrapped, version = kek.wrap(DATA_KEY, AAD)

    with pytest.raises(VaultError) as caught:
        kek.unwrap(wrapped, b"another row", version)
    assert str(caught.value) == "credentials cannot be decrypted"


def test_kms_primary_rotation(kms_client, fake_kms):
    kek = CloudKmsKek(KEY_NAME, client=kms_client)
    wrapped, old = kek.wrap(DATA_KEY, AAD)
    fake_kms.rotate()
    _, new = kek.wrap(DATA_KEY, AAD)

    assert new == f"{KEY_NAME}/cryptoKeyVersions/2" != old
    assert kek.unwrap(wrapped, AAD, old) == DATA_KEY


def test_vault_over_kms(kms_client):
    vault = Vault(CloudKmsKek(KEY_NAME, client=kms_client))
    context = CredentialContext(uuid.uuid4(), "fireblocks", uuid.uuid4())
    sealed = vault.seal(b'{"k":"v"}', context)

    assert sealed.kek_id == KEY_NAME
    assert sealed.kek_version.endswith("/cryptoKeyVersions/1")
    assert vault.open(sealed, context) == b'{"k":"v"}'


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ServiceUnavailable("backend down SECRET-IN-MESSAGE"),
        exceptions.DeadlineExceeded("slow"),
        exceptions.TooManyRequests("quota"),
        exceptions.RetryError("gave up", cause=None),
    ],
    ids=type,
)
@pytest.mark.parametrize("operation", ["wrap", "unwrap"])
def test_kms_outage_is_dependency_unavailable(kms_client, error, operation):
    kek = CloudKmsKek(KEY_NAME, client=kms_client)
    kms_client.encrypt_mock.side_effect = kms_client.decrypt_mock.side_effect = error

    with pytest.raises(DependencyUnavailable) as caught:
        if operation == "wrap":
            kek.wrap(DATA_KEY, AAD)
        else:
            kek.unwrap(b"x" * 40, AAD, f"{KEY_NAME}/cryptoKeyVersions/1")
    assert caught.value.dependency == "kms"
    assert "SECRET-IN-MESSAGE" not in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        exceptions.PermissionDenied("SECRET-IN-MESSAGE"),
        exceptions.InvalidArgument("SECRET-IN-MESSAGE"),
        exceptions.FailedPrecondition("version disabled SECRET-IN-MESSAGE"),
    ],
    ids=type,
)
def test_kms_refusal_is_vault_error_without_its_text(kms_client, error):
    kek = CloudKmsKek(KEY_NAME, client=kms_client)
    kms_client.encrypt_mock.side_effect = kms_client.decrypt_mock.side_effect = error

    with pytest.raises(VaultError) as wrapping:
        kek.wrap(DATA_KEY, AAD)
    with pytest.raises(VaultError) as unwrapping:
        kek.unwrap(b"x" * 40, AAD, "v")
    for caught in (wrapping, unwrapping):
        assert "SECRET-IN-MESSAGE" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_kms_bug_of_ours_is_not_hidden(kms_client):
    kms_client.encrypt_mock.side_effect = TypeError("bad request shape")
    with pytest.raises(TypeError):
        CloudKmsKek(KEY_NAME, client=kms_client).wrap(DATA_KEY, AAD)


def test_kms_client_is_built_on_first_use_only():
    with mock.patch.object(kms, "KeyManagementServiceClient") as constructor:
        kek = CloudKmsKek(KEY_NAME)
        assert constructor.call_count == 0
        constructor.return_value.encrypt.return_value = kms.EncryptResponse(
            name=f"{KEY_NAME}/cryptoKeyVersions/3", ciphertext=b"c"
        )
        assert kek.wrap(DATA_KEY, AAD) == (b"c", f"{KEY_NAME}/cryptoKeyVersions/3")
        kek.wrap(DATA_KEY, AAD)
        assert constructor.call_count == 1


# --- kek_from_settings --------------------------------------------------------------------------


def test_settings_with_kms_key_name_select_cloud_kms():
    settings = SimpleNamespace(kms_key_name=KEY_NAME, encryption_key=None)
    with mock.patch.object(kms, "KeyManagementServiceClient") as constructor:
        kek = kek_from_settings(settings)
    assert isinstance(kek, CloudKmsKek) and kek.kek_id == KEY_NAME
    assert constructor.call_count == 0


def test_settings_without_kms_select_the_local_key_and_its_predecessors():
    old, new = _key(), _key()
    wrapped, version = LocalKek(old).wrap(DATA_KEY, AAD)
    settings = SimpleNamespace(kms_key_name=None, encryption_key=new, encryption_key_previous=[old])

    kek = kek_from_settings(settings)
    assert isinstance(kek, LocalKek)
    assert kek.current_version == LocalKek(new).current_version
    assert kek.unwrap(wrapped, AAD, version) == DATA_KEY


def test_the_suite_settings_select_the_local_key():
    kek = kek_from_settings(get_settings())
    assert isinstance(kek, LocalKek)
    assert kek.current_version == LocalKek(get_settings().encryption_key).current_version


def test_settings_without_any_key_are_refused():
    with pytest.raises(ConfigurationError):
        kek_from_settings(SimpleNamespace(kms_key_name=None, encryption_key=None))
