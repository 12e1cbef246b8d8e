"""The Fireblocks credential form: an API user's key (a UUID) and the RSA private key of its CSR."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MIN_RSA_BITS = 2048
# The API key is the API user's UUID (reference §1.1); Fireblocks shows it hyphenated.
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


class ApiKeyCredentials(BaseModel):
    """A Fireblocks API user with the Viewer role, as the onboarding form collects it."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        # str(error) omits inputs; `_mask_inputs` below covers errors() and json() as well.
        hide_input_in_errors=True,
        title="Fireblocks API user",
        json_schema_extra={
            "description": (
                "In the Fireblocks Console, open Developer Center → API users and add an API user "
                "with the Viewer role (read-only), using a CSR generated with your own RSA key. "
                "Once it is approved, paste its API key and the private key of that CSR here."
            )
        },
    )

    api_key: Annotated[
        SecretStr,
        Field(
            title="API key",
            description=(
                "The API key the Fireblocks Console shows for the Viewer API user "
                "(a UUID such as 1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d)."
            ),
        ),
    ]
    private_key: Annotated[
        SecretStr,
        Field(
            title="Private key (PEM)",
            description=(
                "The RSA private key you generated together with the API user's CSR, in PEM "
                "form: everything from -----BEGIN PRIVATE KEY----- (or BEGIN RSA PRIVATE KEY) to "
                "the matching END line. Paste the private key, not the CSR."
            ),
        ),
    ]

    @model_validator(mode="before")
    @classmethod
    def _mask_inputs(cls, data: Any) -> Any:
        # pydantic puts the rejected input into `errors()` and `json()` (hide_input_in_errors
        # only covers str()); wrapping every text value, misnamed fields included, means no error
        # can carry a pasted key, whoever renders or logs it.
        if isinstance(data, dict):
            return {k: SecretStr(v) if isinstance(v, str) else v for k, v in data.items()}
        return data

    @field_validator("api_key")
    @classmethod
    def _uuid(cls, value: SecretStr) -> SecretStr:
        # SecretStr escapes str_strip_whitespace, so strip here: forms paste trailing newlines.
        key = value.get_secret_value().strip()
        if not _UUID.match(key):
            raise ValueError("must be the API user's API key, a UUID like 1b2c3d4e-5f60-…")
        return SecretStr(key)

    @field_validator("private_key")
    @classmethod
    def _rsa_private_key(cls, value: SecretStr) -> SecretStr:
        pem = _normalise_pem(value.get_secret_value())
        # Every message below is fixed text: the key itself is never quoted back.
        if "CERTIFICATE REQUEST" in pem:
            raise ValueError("this is the CSR; paste the private key it was generated with")
        if "PUBLIC KEY" in pem or "CERTIFICATE-----" in pem:
            raise ValueError("this is a public key or certificate; paste the private key")
        if "ENCRYPTED" in pem:
            raise ValueError("the private key is encrypted; paste it without a passphrase")
        load_rsa_private_key(pem)
        return SecretStr(pem)

    def key_hint(self) -> str:
        """The last four characters of the API key: enough to tell keys apart in logs."""
        return "…" + self.api_key.get_secret_value()[-4:]


def _normalise_pem(text: str) -> str:
    pem = text.replace("\r\n", "\n")
    # A key copied from a JSON file or an env variable often arrives with literal "\n" escapes.
    if "\n" not in pem.strip() and "\\n" in pem:
        pem = pem.replace("\\n", "\n")
    return pem.strip() + "\n"


def load_rsa_private_key(pem: str) -> object:
    """The RSA private key of `pem` (an RSAPrivateKey); ValueError with a fixed message if not."""
    # Imported here so that loading the credential form (the registry) stays light.
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:  # the PEM is encrypted under a passphrase
        raise ValueError("the private key is encrypted; paste it without a passphrase") from None
    except (ValueError, UnicodeError):
        # cryptography's own message is safe, but "could not parse" is all a user can act on.
        raise ValueError("is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("must be an RSA private key (Fireblocks signs API requests with RS256)")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the RSA key must have at least {MIN_RSA_BITS} bits")
    return key
