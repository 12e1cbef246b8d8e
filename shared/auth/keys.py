"""Keys derived from SECRET_KEY, one per purpose, so no two uses ever share a key."""

from __future__ import annotations

import hashlib
import hmac


def derive(secret_key: str, purpose: str) -> bytes:
    """A 256-bit key for `purpose` (HMAC-SHA256 of the purpose under the secret key)."""
    return hmac.new(secret_key.encode(), f"coinfrs:{purpose}".encode(), hashlib.sha256).digest()


def keyed_hash(key: bytes, value: str) -> str:
    """What we store instead of a code or token: a keyed hash, useless without the key."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A public name for a key (the JWT `kid`), so a rotated key can still be recognised."""
    return hashlib.sha256(b"kid:" + key).hexdigest()[:16]
