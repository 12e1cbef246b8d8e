"""The Binance onboarding forms: an HMAC key or (recommended) an Ed25519 key, read-only."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

_WHERE = (
    "Create it in Binance under Account → API Management → Create API. Tick only "
    '"Enable Reading": Coinfrs refuses a key that can trade, withdraw or transfer.'
)
# Binance's HMAC keys are 64 alphanumerics today; the form only rules out what cannot be a key, so
# a format change at Binance does not lock customers out (Binance itself answers -2014).
_API_KEY = {"min_length": 1, "max_length": 128, "pattern": r"^\S+$"}


def _no_whitespace(value: SecretStr) -> SecretStr:
    # The message never repeats the value: it is a secret.
    if any(character.isspace() for character in value.get_secret_value()):
        raise ValueError("must not contain spaces or line breaks")
    return value


def _ed25519_pem(value: SecretStr) -> SecretStr:
    """Accept only an unencrypted PKCS#8 Ed25519 private key in PEM form."""
    # Imported here: the registry loads this module on every cold start, the check runs rarely.
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = value.get_secret_value()
    if "PUBLIC KEY-----" in pem:
        raise ValueError(
            "this is a public key: register it in Binance, and paste the private key here"
        )
    if "ENCRYPTED PRIVATE KEY-----" in pem:
        raise ValueError("the private key is encrypted: paste it without a passphrase")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's own message may quote part of the input: never pass it on.
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(
            "must be an Ed25519 private key in PEM form (PKCS#8, "
            "-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----)"
        )
    return value


_FORM = ConfigDict(
    extra="forbid",
    str_strip_whitespace=True,
    # A ValidationError's text would otherwise quote the pasted secret.
    hide_input_in_errors=True,
)


class HmacCredentials(BaseModel):
    """A system-generated (HMAC) Binance key: the API key and its secret key."""

    model_config = ConfigDict(
        **_FORM,
        title="Binance HMAC key",
        json_schema_extra={
            "description": "A system-generated key (HMAC). Binance recommends Ed25519 keys "
            "instead; use this form only for an existing HMAC key. " + _WHERE
        },
    )

    api_key: str = Field(
        title="API key",
        description="The API key Binance shows for the key. " + _WHERE,
        repr=False,
        **_API_KEY,
    )
    api_secret: Annotated[SecretStr, AfterValidator(_no_whitespace)] = Field(
        title="Secret key",
        description="The secret key Binance shows once, when the key is created. Coinfrs stores "
        "it encrypted and never shows it again.",
        min_length=1,
        max_length=128,
    )


class Ed25519Credentials(BaseModel):
    """A self-generated Ed25519 Binance key (recommended): the API key and the private key."""

    model_config = ConfigDict(
        **_FORM,
        title="Binance Ed25519 key (recommended)",
        json_schema_extra={
            "description": "Recommended. Generate an Ed25519 key pair (Binance's key generator, "
            "or `openssl genpkey -algorithm ed25519`), choose Self-generated when creating the "
            "API key and register the PUBLIC key. " + _WHERE
        },
    )

    api_key: str = Field(
        title="API key",
        description="The API key Binance shows after you register the public key. " + _WHERE,
        repr=False,
        **_API_KEY,
    )
    private_key: Annotated[SecretStr, AfterValidator(_ed25519_pem)] = Field(
        title="Ed25519 private key",
        description="The PRIVATE key of the pair, in PEM form: unencrypted PKCS#8, from "
        "-----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----. It never leaves Coinfrs: "
        "it is stored encrypted, used only to sign requests, and never shown again.",
    )
