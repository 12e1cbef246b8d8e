"""The Binance onboarding forms: what they accept, what they tell the form, what they never echo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from shared.errors import field_errors
from shared.sources.binance.credentials import Ed25519Credentials, HmacCredentials

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PLANTED = "PLANTEDsecretMaterial0123456789"


def _pem(key: object, *, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.fixture(scope="module")
def ed25519_pem() -> str:
    return _pem(Ed25519PrivateKey.generate())


def _error_text(error: ValidationError) -> str:
    """What a caller shows or logs of the error: its text, and the details the API returns.

    (`errors()` with inputs is pydantic's raw record and holds the input by design.)"""
    return (
        str(error)
        + repr(error.errors(include_input=False))
        + repr(field_errors(error, "credentials"))
    )


@pytest.mark.parametrize("model", [HmacCredentials, Ed25519Credentials])
def test_schema_gives_the_form_titles_help_and_password_fields(model: type) -> None:
    schema = model.model_json_schema()
    assert schema["title"] and schema["description"]
    assert schema["additionalProperties"] is False
    for name, field in schema["properties"].items():
        assert field["title"], name
        assert field["description"], name
    secret_field = "api_secret" if model is HmacCredentials else "private_key"
    assert schema["properties"][secret_field]["format"] == "password"
    assert schema["properties"][secret_field]["writeOnly"] is True
    assert "format" not in schema["properties"]["api_key"]
    help_text = str(schema)
    assert "Enable Reading" in help_text
    assert "API Management" in help_text


def test_the_forms_recommend_ed25519() -> None:
    assert "recommended" in Ed25519Credentials.model_json_schema()["title"].lower()
    assert "Ed25519" in HmacCredentials.model_json_schema()["description"]


def test_hmac_form_accepts_a_key_and_strips_pasted_whitespace() -> None:
    credentials = HmacCredentials(api_key=f"  {API_KEY}\n", api_secret=f"{SECRET} ")
    assert credentials.api_key == API_KEY
    assert credentials.api_secret.get_secret_value() == SECRET


@pytest.mark.parametrize(
    "api_key", ["", "a" * 129, "two words", "tab\tinside"], ids=["empty", "long", "space", "tab"]
)
def test_api_key_must_be_1_to_128_characters_without_whitespace(api_key: str) -> None:
    with pytest.raises(ValidationError):
        HmacCredentials(api_key=api_key, api_secret=SECRET)


def test_api_key_is_not_over_constrained() -> None:
    # Not 64 alphanumerics, still a key Binance may issue one day: Binance judges it (-2014).
    assert HmacCredentials(api_key="k-" + "x" * 100, api_secret=SECRET).api_key


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        HmacCredentials(api_key=API_KEY, api_secret=SECRET, passphrase="x")
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_secret_with_spaces_is_refused_without_echo() -> None:
    with pytest.raises(ValidationError) as caught:
        HmacCredentials(api_key=API_KEY, api_secret=f"{PLANTED} {PLANTED}")
    assert PLANTED not in _error_text(caught.value)


def test_secrets_stay_out_of_repr() -> None:
    credentials = HmacCredentials(api_key=API_KEY, api_secret=SECRET)
    assert SECRET not in repr(credentials) and SECRET not in str(credentials)
    assert API_KEY not in repr(credentials)


def test_ed25519_form_accepts_a_pkcs8_pem(ed25519_pem: str) -> None:
    credentials = Ed25519Credentials(api_key=API_KEY, private_key=ed25519_pem)
    assert credentials.private_key.get_secret_value() == ed25519_pem.strip()
    assert "PRIVATE KEY" not in repr(credentials)


def test_ed25519_form_accepts_crlf_and_short_lines(ed25519_pem: str) -> None:
    body = "".join(ed25519_pem.splitlines()[1:-1])
    rewrapped = "\r\n".join(
        ["-----BEGIN PRIVATE KEY-----", *textwrap.wrap(body, 16), "-----END PRIVATE KEY-----"]
    )
    assert Ed25519Credentials(api_key=API_KEY, private_key=rewrapped)


@pytest.mark.parametrize(
    "bad_key",
    [
        PLANTED,
        f"-----BEGIN PRIVATE KEY-----\n{PLANTED}\n-----END PRIVATE KEY-----",
        f"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI{PLANTED}\n-----END PRIVATE KEY-----",
    ],
    ids=["not-pem", "not-base64", "truncated-der"],
)
def test_a_bad_pem_is_refused_without_echoing_it(bad_key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Ed25519Credentials(api_key=API_KEY, private_key=bad_key)
    text = _error_text(caught.value)
    assert PLANTED not in text
    assert "Ed25519 private key in PEM form" in text


def test_another_key_type_is_refused_without_echoing_it() -> None:
    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValidationError) as caught:
        Ed25519Credentials(api_key=API_KEY, private_key=pem)
    text = _error_text(caught.value)
    assert "Ed25519 private key" in text
    assert pem.splitlines()[1] not in text


def test_a_pasted_public_key_gets_a_hint(ed25519_pem: str) -> None:
    public = (
        serialization.load_pem_private_key(ed25519_pem.encode(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValidationError) as caught:
        Ed25519Credentials(api_key=API_KEY, private_key=public)
    assert "this is a public key" in _error_text(caught.value)


def test_an_encrypted_key_gets_a_hint() -> None:
    pem = _pem(Ed25519PrivateKey.generate(), password=b"correct horse")
    with pytest.raises(ValidationError) as caught:
        Ed25519Credentials(api_key=API_KEY, private_key=pem)
    text = _error_text(caught.value)
    assert "encrypted" in text
    assert pem.splitlines()[1] not in text


def test_the_forms_are_distinct() -> None:
    # The service tries each form in turn: a request must fit exactly one.
    with pytest.raises(ValidationError):
        Ed25519Credentials(api_key=API_KEY, api_secret=SECRET)


def test_importing_the_provider_registers_it_without_python_binance() -> None:
    # A fresh interpreter: this test process may already have imported python-binance. The
    # registry is not empty after the import, so source_types() loads no other provider.
    code = (
        "import sys, shared.sources.binance\n"
        "from shared.sources.registry import source_types\n"
        "source = source_types()['binance']\n"
        "assert source.display_name == 'Binance', source\n"
        "assert [m.__name__ for m in source.credential_models] == "
        "['HmacCredentials', 'Ed25519Credentials']\n"
        "heavy = sorted(m for m in sys.modules if m == 'binance' or m.startswith('binance.'))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[4],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
