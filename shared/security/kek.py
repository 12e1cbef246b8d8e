"""Key-encryption keys that wrap data keys: Cloud KMS in GCP, a local AES key in development."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from typing import Any, NoReturn, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.config import ConfigurationError
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

NONCE_BYTES = 12
# A bounded wait: a request must answer 503, not hang, when KMS is slow.
KMS_TIMEOUT_SECONDS = 10.0


class VaultError(Exception):
    """Sealed material cannot be produced or opened (tampered, wrong key, refused by KMS).

    Not a DomainError on purpose: it is a server-side integrity fault (500), and its message
    never carries key material, plaintext or a hint about which check failed.
    """


class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys; `aad` binds a wrapped key to the row it belongs to."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[bytes, str]:
        """The wrapped data key and the version of this key that wrapped it."""
        ...

    def unwrap(self, wrapped: bytes, aad: bytes, version: str) -> bytes:
        """The data key; VaultError when `wrapped` or `aad` is not what was wrapped."""
        ...


def key_version(key: bytes) -> str:
    """A public fingerprint of a local key, stored with each wrapped key to find it again."""
    return hashlib.sha256(b"kek:" + key).hexdigest()[:16]


def _decode_key(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("ENCRYPTION_KEY: must be base64") from None
    if len(raw) != 32:
        raise ConfigurationError("ENCRYPTION_KEY: must be the base64 of exactly 32 bytes")
    return raw


class LocalKek:
    """AES-256-GCM under ENCRYPTION_KEY (development and tests only).

    Rotation: set a new ENCRYPTION_KEY, keep the old one in the previous list until
    `python -m shared.security.rotate` has re-wrapped every data key.
    """

    kek_id = "local"

    def __init__(self, current_key_b64: str, previous_keys_b64: list[str] | None = None) -> None:
        current = _decode_key(current_key_b64)
        self.current_version = key_version(current)
        self._keys = {key_version(k): k for k in map(_decode_key, previous_keys_b64 or [])}
        self._keys[self.current_version] = current

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[bytes, str]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keys[self.current_version]).encrypt(nonce, data_key, aad)
        return nonce + sealed, self.current_version

    def unwrap(self, wrapped: bytes, aad: bytes, version: str) -> bytes:
        key = self._keys.get(version)
        if key is None:
            log.warning("data key wrapped by an unknown local key", extra={"kek_version": version})
            raise VaultError("credentials cannot be decrypted")
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise VaultError("credentials cannot be decrypted") from None


class CloudKmsKek:
    """A Cloud KMS symmetric CryptoKey; KMS keeps the key material and picks versions.

    No CRC32C integrity check of requests/responses: `google-crc32c` is not a dependency, and
    AES-GCM already authenticates both the wrapped key and the data it protects.
    """

    def __init__(self, key_name: str, client: Any = None) -> None:
        self._key_name = key_name
        # Built on first use: constructing the client resolves credentials, which must not
        # happen at import or in processes that never touch credentials.
        self._client = client

    @property
    def kek_id(self) -> str:
        return self._key_name

    def _kms(self) -> Any:
        if self._client is None:
            from google.cloud import kms

            try:
                self._client = kms.KeyManagementServiceClient()
            except Exception as error:
                _raise_translated(error, self._key_name, "connect")
        return self._client

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[bytes, str]:
        request = {
            "name": self._key_name,
            "plaintext": bytes(data_key),
            "additional_authenticated_data": aad,
        }
        kms = self._kms()
        try:
            response = kms.encrypt(request=request, timeout=KMS_TIMEOUT_SECONDS)
        except Exception as error:
            _raise_translated(error, self._key_name, "encrypt")
        # `name` is the CryptoKeyVersion KMS used: the primary at the time of the call.
        return bytes(response.ciphertext), str(response.name)

    def unwrap(self, wrapped: bytes, aad: bytes, version: str) -> bytes:
        # KMS reads the version from the ciphertext itself; `version` is kept for audit/rotation.
        request = {
            "name": self._key_name,
            "ciphertext": bytes(wrapped),
            "additional_authenticated_data": aad,
        }
        kms = self._kms()
        try:
            response = kms.decrypt(request=request, timeout=KMS_TIMEOUT_SECONDS)
        except Exception as error:
            _raise_translated(error, self._key_name, "decrypt", version)
        return bytes(response.plaintext)


def _raise_translated(
    error: Exception, key_name: str, operation: str, version: str | None = None
) -> NoReturn:
    """KMS outages become DependencyUnavailable (503); refusals become VaultError.

    Messages name only the operation and the error class: KMS error text can echo request
    fields, and a refusal must not tell a caller which check failed.
    """
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    transient = (
        api.ServiceUnavailable,
        api.DeadlineExceeded,
        api.InternalServerError,
        api.TooManyRequests,  # includes ResourceExhausted (quota)
        api.BadGateway,
        api.GatewayTimeout,
        api.Aborted,
        api.RetryError,  # the client's own retries gave up on a transient error
        auth.TransportError,
        auth.RefreshError,  # the metadata server could not mint a token just now
        TimeoutError,
        ConnectionError,
    )
    extra = {"kek_id": key_name, "operation": operation, "error_type": type(error).__name__}
    if version is not None:
        extra["kek_version"] = version
    if isinstance(error, transient):
        log.warning("kms unavailable", extra=extra)
        raise DependencyUnavailable("kms", "the key management service is unavailable") from None
    if isinstance(error, api.GoogleAPIError | auth.GoogleAuthError):
        log.error("kms refused the request", extra=extra)
        if operation == "decrypt":
            raise VaultError("credentials cannot be decrypted") from None
        raise VaultError(f"the key management service refused to {operation}") from None
    # Anything else is a bug of ours, not KMS's: let it surface as itself.
    raise error


def kek_from_settings(settings: Any) -> KeyEncryptionKey:
    """Cloud KMS when KMS_KEY_NAME is set, else ENCRYPTION_KEY (plus retired local keys)."""
    if settings.kms_key_name:
        return CloudKmsKek(settings.kms_key_name)
    if not settings.encryption_key:
        raise ConfigurationError("ENCRYPTION_KEY (or KMS_KEY_NAME) is required")
    previous = getattr(settings, "encryption_key_previous", None) or []
    return LocalKek(settings.encryption_key, list(previous))
