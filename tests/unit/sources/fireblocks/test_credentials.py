"""Fireblocks credential form: a UUID API key and an RSA (>= 2048) PEM, never echoed back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from shared.sources.fireblocks.credentials import ApiKeyCredentials

ROOT = Path(__file__).resolve().parents[4]
API_KEY = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"


def _pem(key, fmt=serialization.PrivateFormat.PKCS8, encryption=None) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_pem(rsa_key) -> str:
    return _pem(rsa_key)


def _body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM: what would give the key away if echoed."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _refused(pem: str, api_key: str = API_KEY) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ApiKeyCredentials(api_key=api_key, private_key=pem)
    error = caught.value
    # Neither the message, nor the structured errors, nor their JSON may carry the key.
    shown = str(error) + repr(error.errors()) + error.json()
    for line in _body_lines(pem)[:3] + _body_lines(pem)[-2:]:
        assert line not in shown
    return error


def _message(error: ValidationError) -> str:
    return " ".join(item["msg"] for item in error.errors())


def test_valid_credentials_are_kept_stripped_and_hidden(rsa_pem):
    credentials = ApiKeyCredentials(api_key=f"  {API_KEY}\n", private_key=f"\n  {rsa_pem}  \n")
    assert credentials.api_key.get_secret_value() == API_KEY
    assert credentials.private_key.get_secret_value() == rsa_pem.strip() + "\n"
    shown = repr(credentials) + str(credentials) + credentials.model_dump_json()
    assert API_KEY not in shown
    assert _body_lines(rsa_pem)[1] not in shown
    assert credentials.key_hint() == "…4c5d"


def test_traditional_rsa_pem_and_escaped_newlines_are_accepted(rsa_key):
    traditional = _pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert "BEGIN RSA PRIVATE KEY" in traditional
    assert ApiKeyCredentials(api_key=API_KEY, private_key=traditional)
    crlf = traditional.replace("\n", "\r\n")
    assert ApiKeyCredentials(api_key=API_KEY, private_key=crlf)
    escaped = traditional.replace("\n", "\\n")
    loaded = ApiKeyCredentials(api_key=API_KEY, private_key=escaped)
    assert loaded.private_key.get_secret_value() == traditional


def test_unknown_fields_are_refused(rsa_pem):
    with pytest.raises(ValidationError) as caught:
        ApiKeyCredentials(api_key=API_KEY, private_key=rsa_pem, api_secret="x")
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "api_key",
    ["", "not-a-uuid", API_KEY.replace("-", ""), API_KEY + "0", "{" + API_KEY + "}"],
)
def test_api_key_must_be_a_uuid(rsa_pem, api_key):
    error = _refused(rsa_pem, api_key=api_key)
    assert error.errors()[0]["loc"] == ("api_key",)
    if api_key:
        assert api_key not in str(error)


def test_garbage_pem_is_refused_without_echo(rsa_pem):
    lines = rsa_pem.splitlines()
    # A real-looking key with its body corrupted: the most likely paste error.
    corrupted = "\n".join([lines[0], *(line[::-1] for line in lines[1:-1]), lines[-1]])
    error = _refused(corrupted)
    assert error.errors()[0]["loc"] == ("private_key",)
    assert "is not a PEM private key" in _message(error)
    assert "input_value" not in str(error)


def test_plain_text_is_refused():
    error = _refused("hunter2-this-is-not-a-key")
    assert "hunter2" not in str(error)
    assert "is not a PEM private key" in _message(error)


def test_non_rsa_key_is_refused():
    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    assert "must be an RSA private key" in _message(_refused(pem))


def test_short_rsa_key_is_refused():
    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert "at least 2048 bits" in _message(_refused(pem))


def test_encrypted_key_is_refused(rsa_key):
    pem = _pem(rsa_key, encryption=serialization.BestAvailableEncryption(b"passphrase"))
    assert "encrypted" in _message(_refused(pem))


def test_public_key_is_refused_with_a_hint(rsa_key):
    pem = (
        rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert "paste the private key" in _message(_refused(pem))


def test_csr_is_refused_with_a_hint():
    csr = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        "MIICijCCAXICAQAwRTELMAkGA1UEBhMCQVUx\n"
        "-----END CERTIFICATE REQUEST-----\n"
    )
    assert "this is the CSR" in _message(_refused(csr))


def test_json_schema_is_a_renderable_form():
    schema = ApiKeyCredentials.model_json_schema()
    assert schema["title"] == "Fireblocks API user"
    assert "Viewer role" in schema["description"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["api_key", "private_key"]
    for name in ("api_key", "private_key"):
        field = schema["properties"][name]
        assert field["type"] == "string"
        assert field["format"] == "password"
        assert field["writeOnly"] is True
        assert field["title"] and len(field["description"]) > 40
    assert "Viewer" in schema["properties"]["api_key"]["description"]
    assert "CSR" in schema["properties"]["private_key"]["description"]
    json.dumps(schema)


def test_package_registers_fireblocks_with_a_lazy_client(rsa_pem):
    import shared.sources.fireblocks
    from shared.config import get_settings
    from shared.sources.fireblocks.client import Client
    from shared.sources.registry import source_types

    source = source_types()["fireblocks"]
    assert source is shared.sources.fireblocks.SOURCE
    assert (source.type, source.display_name) == ("fireblocks", "Fireblocks")
    assert source.credential_models == (ApiKeyCredentials,)
    credentials = ApiKeyCredentials(api_key=API_KEY, private_key=rsa_pem)
    client = source.client(get_settings(), credentials)
    assert isinstance(client, Client)
    assert API_KEY not in repr(client)
    client.close()


def test_importing_the_package_loads_neither_httpx_nor_jwt():
    # A fresh interpreter: this test process has long imported both.
    code = (
        "import sys, shared.sources.fireblocks as fb; "
        "assert 'fireblocks' in __import__('shared.sources.registry').sources.registry._REGISTRY; "
        "print(sorted(m for m in ('httpx', 'jwt', 'shared.sources.fireblocks.client') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
