"""Settings: every CONTRACT.md variable, validated at start-up, errors naming the culprit."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from shared.config import ConfigurationError, Settings, _SecretStoreSource, load_settings

KEY = base64.b64encode(b"k" * 32).decode()
SECRET = "s" * 40


def test_missing_secret_key_stops_start_up_naming_it(monkeypatch):
    monkeypatch.delenv("SECRET_KEY")
    with pytest.raises(ConfigurationError, match="SECRET_KEY: is required"):
        load_settings()


def test_malformed_values_are_named_without_echoing_them():
    with pytest.raises(ConfigurationError) as caught:
        load_settings(encryption_key=base64.b64encode(b"short").decode(), smtp_port="not-a-port")
    message = str(caught.value)
    assert "ENCRYPTION_KEY: must be the base64 of exactly 32 bytes" in message
    assert "SMTP_PORT" in message
    assert base64.b64encode(b"short").decode() not in message


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (
            "database_url",
            "postgresql://u@h/db",
            r"DATABASE_URL: must start with postgresql\+pg8000://",
        ),
        (
            "binance_spot_url",
            "https://api.binance.com/api/v3",
            "BINANCE_SPOT_URL: must be a host root",
        ),
        ("cors_origins", "app.example.com", "CORS_ORIGINS"),
        ("bus", "kafka", "BUS"),
        ("snapshot_grace", "soon", "SNAPSHOT_GRACE"),
    ],
)
def test_each_malformed_variable_is_named(name, value, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        load_settings(**{name: value})


def test_every_contract_variable_is_a_setting():
    contract = {
        "DATABASE_URL", "SECRET_KEY", "ENCRYPTION_KEY", "KMS_KEY_NAME", "GOOGLE_CLIENT_ID",
        "GOOGLE_CLIENT_SECRET", "GOOGLE_DISCOVERY_URL", "OAUTH_REDIRECT_URIS", "SMTP_HOST",
        "SMTP_PORT", "SMTP_FROM", "CORS_ORIGINS", "SENTRY_DSN", "BUS", "BINANCE_SPOT_URL",
        "BINANCE_USDM_URL", "BINANCE_COINM_URL", "FIREBLOCKS_URL", "SNAPSHOT_GRACE",
    }  # fmt: skip
    assert {name.lower() for name in contract} <= set(Settings.model_fields)


def test_values_are_parsed(monkeypatch):
    monkeypatch.delenv("FIREBLOCKS_URL")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("SNAPSHOT_GRACE", "90m")
    monkeypatch.setenv("BINANCE_SPOT_URL", "http://127.0.0.1:9001/")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.snapshot_grace == timedelta(minutes=90)
    assert settings.binance_spot_url == "http://127.0.0.1:9001"
    assert settings.fireblocks_url == "https://api.fireblocks.io"


def test_snapshot_grace_defaults_to_six_hours():
    assert load_settings().snapshot_grace == timedelta(hours=6)


def test_production_demands_kms_and_the_gcp_bus():
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environment="production")
    message = str(caught.value)
    assert "KMS_KEY_NAME is required in production" in message
    assert "ENCRYPTION_KEY is for development only" in message
    assert "BUS must be gcp in production" in message


def test_development_needs_an_encryption_key(monkeypatch):
    monkeypatch.delenv("ENCRYPTION_KEY")
    with pytest.raises(ConfigurationError, match=r"ENCRYPTION_KEY \(or KMS_KEY_NAME\) is required"):
        load_settings()


def test_secrets_never_appear_in_repr():
    settings = load_settings(sentry_dsn="https://abc@sentry.example/1")
    text = repr(settings)
    assert settings.secret_key not in text
    assert settings.encryption_key not in text
    assert "sentry.example" not in text


class FakeStore:
    def __init__(self, values):
        self.values = values
        self.asked = []

    def get(self, name):
        self.asked.append(name)
        return self.values.get(name)


def test_secret_store_fills_only_secrets_the_environment_lacks(monkeypatch):
    monkeypatch.delenv("SECRET_KEY")
    store = FakeStore(
        {"SECRET_KEY": "from-secret-manager-" + "x" * 20, "ENCRYPTION_KEY": "ignored"}
    )
    values = _SecretStoreSource(Settings, store)()
    assert values == {"secret_key": "from-secret-manager-" + "x" * 20}
    assert "DATABASE_URL" not in store.asked
