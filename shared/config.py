"""One validated Settings for every function, and the bootstrap that picks adapters from it."""

from __future__ import annotations

import base64
import binascii
import functools
import os
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

# Settings whose values are secrets: never logged, never shown in an error, and the ones that
# `SECRETS_BACKEND=secret_manager` reads from Secret Manager when the environment lacks them.
SECRET_FIELDS = (
    "secret_key",
    "secret_key_previous",
    "encryption_key_previous",
    "encryption_key",
    "google_client_secret",
    "db_pass",
    "sentry_dsn",
    "smtp_password",
)


class ConfigurationError(RuntimeError):
    """Start-up configuration is missing or malformed; the message names every bad variable."""


class SecretStore(Protocol):
    """Where production secrets come from (Secret Manager in GCP, the environment locally)."""

    def get(self, name: str) -> str | None: ...


class EnvSecretStore:
    """Secrets are plain environment variables (local development, tests, mounted secrets)."""

    def get(self, name: str) -> str | None:
        return os.environ.get(name)


class SecretManagerStore:
    """Secrets are Secret Manager secrets named like the variable, latest version."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._client: Any = None

    def get(self, name: str) -> str | None:
        from google.api_core import exceptions
        from google.cloud import secretmanager

        if self._client is None:
            self._client = secretmanager.SecretManagerServiceClient()
        path = f"projects/{self._project}/secrets/{name}/versions/latest"
        try:
            response = self._client.access_secret_version(request={"name": path})
        except exceptions.NotFound:
            return None
        return response.payload.data.decode("utf-8")


class _SecretStoreSource(PydanticBaseSettingsSource):
    """Fills secret fields the environment left empty from Secret Manager (production only)."""

    def __init__(self, settings_cls: type[BaseSettings], store: SecretStore) -> None:
        super().__init__(settings_cls)
        self._store = store

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._store.get(field_name.upper()), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            if os.environ.get(name.upper()):
                continue
            value = self._store.get(name.upper())
            if value is not None:
                values[name] = value
        return values


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every variable of CONTRACT.md plus the deployment knobs; validated once at start-up."""

    model_config = SettingsConfigDict(
        # COINFRS_ENV_FILE="" disables .env (the tests must never read a developer's settings).
        env_file=os.environ.get("COINFRS_ENV_FILE", ".env") or None,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Database: a plain URL locally; the Cloud SQL connector when INSTANCE_CONNECTION_NAME is set.
    database_url: str | None = None
    instance_connection_name: str | None = None
    db_user: str | None = None
    db_pass: str | None = Field(default=None, repr=False)
    db_name: str | None = None
    db_iam_auth: bool = False
    db_private_ip: bool = False

    secret_key: str = Field(min_length=32, repr=False)
    # Keys retired by a rotation: tokens they signed stay valid until they expire.
    secret_key_previous: CsvList = Field(default=[], repr=False)
    encryption_key: str | None = Field(default=None, repr=False)
    # Local keys retired by a rotation: data keys they wrapped still open until
    # `python -m shared.security.rotate` has re-wrapped them under ENCRYPTION_KEY.
    encryption_key_previous: CsvList = Field(default=[], repr=False)
    kms_key_name: str | None = None
    secrets_backend: Literal["env", "secret_manager"] = "env"

    google_client_id: str | None = None
    google_client_secret: str | None = Field(default=None, repr=False)
    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    oauth_redirect_uris: CsvList = []

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_from: str = "Coinfrs <no-reply@coinfrs.local>"
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = False

    cors_origins: CsvList = []
    # Proxies in front of the functions that append to X-Forwarded-For (Google's load balancer
    # and Cloud Run's front end: 2); 0 trusts only the socket peer (local development).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    sentry_dsn: str | None = Field(default=None, repr=False)

    bus: Literal["local", "gcp"] = "local"
    gcp_project: str = "coinfrs-local"
    gcp_location: str = "europe-west1"
    pubsub_emulator_host: str | None = None
    cloud_tasks_emulator_host: str | None = None
    # Where Cloud Tasks and the local bus reach function targets: `<base>/<target>/`.
    functions_base_url: str = "http://127.0.0.1:8080/functions"
    tasks_service_account_email: str | None = None

    binance_spot_url: str = "https://api.binance.com"
    binance_usdm_url: str = "https://fapi.binance.com"
    binance_coinm_url: str = "https://dapi.binance.com"
    fireblocks_url: str = "https://api.fireblocks.io"

    snapshot_grace: timedelta = timedelta(hours=6)
    # Per-asset tolerance of the daily check, JSON: {"USDT": "0.000001"}; none means exact.
    reconciliation_tolerances: dict[str, Decimal] = {}

    @field_validator(
        "oauth_redirect_uris",
        "cors_origins",
        "secret_key_previous",
        "encryption_key_previous",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("cors_origins", "oauth_redirect_uris")
    @classmethod
    def _absolute_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @field_validator("binance_spot_url", "binance_usdm_url", "binance_coinm_url", "fireblocks_url")
    @classmethod
    def _host_root(cls, value: str) -> str:
        value = value.rstrip("/")
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError("must be a host root like https://api.example.com, without a path")
        return value

    @field_validator("database_url")
    @classmethod
    def _pg8000_url(cls, value: str | None) -> str | None:
        if value and not value.startswith("postgresql+pg8000://"):
            raise ValueError("must start with postgresql+pg8000://")
        return value

    @field_validator("encryption_key", "encryption_key_previous")
    @classmethod
    def _thirty_two_bytes(cls, value: str | list[str] | None) -> str | list[str] | None:
        for key in [value] if isinstance(value, str) else value or []:
            try:
                raw = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be base64") from None
            if len(raw) != 32:
                raise ValueError("must be the base64 of exactly 32 bytes")
        return value

    @field_validator("snapshot_grace", mode="before")
    @classmethod
    def _grace(cls, value: Any) -> Any:
        # Accept "6h", "90m", "3600s" as well as ISO 8601 durations and seconds.
        if isinstance(value, str) and value[-1:] in "hms" and value[:-1].isdigit():
            unit = {"h": "hours", "m": "minutes", "s": "seconds"}[value[-1]]
            return timedelta(**{unit: int(value[:-1])})
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = []
        if self.database_url and self.instance_connection_name:
            problems.append("DATABASE_URL and INSTANCE_CONNECTION_NAME: set one, not both")
        if self.instance_connection_name and not (self.db_user and self.db_name):
            problems.append("INSTANCE_CONNECTION_NAME needs DB_USER and DB_NAME")
        if self.environment == "production":
            if not self.kms_key_name:
                problems.append("KMS_KEY_NAME is required in production")
            if self.encryption_key:
                problems.append("ENCRYPTION_KEY is for development only; use KMS_KEY_NAME")
            if self.bus != "gcp":
                problems.append("BUS must be gcp in production")
            if self.smtp_username and not self.smtp_starttls:
                problems.append("SMTP_USERNAME needs SMTP_STARTTLS: never send a password in clear")
            if not (self.database_url or self.instance_connection_name):
                problems.append(
                    "DATABASE_URL or INSTANCE_CONNECTION_NAME is required in production"
                )
        elif not self.kms_key_name and not self.encryption_key:
            problems.append("ENCRYPTION_KEY (or KMS_KEY_NAME) is required")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        if os.environ.get("SECRETS_BACKEND", "env").lower() == "secret_manager":
            project = os.environ.get("GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
            if not project:
                raise ConfigurationError("SECRETS_BACKEND=secret_manager needs GCP_PROJECT")
            sources.append(_SecretStoreSource(settings_cls, SecretManagerStore(project)))
        return tuple(sources)


def _describe(error: ValidationError) -> str:
    """Name each bad variable without echoing its value (it may be a secret)."""
    lines = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "configuration"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if item["type"] != "missing" else f"{name}: is required")
    return "invalid configuration — " + "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build and validate Settings, raising ConfigurationError that names every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(_describe(error)) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide Settings (validated on first use, which every target does at import)."""
    return load_settings()


class Runtime:
    """The bootstrap: settings plus the adapters they select, built once per process, lazily."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bus: Any = None

    @functools.cached_property
    def tokens(self) -> Any:
        """Signs and verifies access tokens with SECRET_KEY (and the retired keys)."""
        from shared.auth.tokens import TokenSigner

        return TokenSigner(self.settings.secret_key, self.settings.secret_key_previous)

    @functools.cached_property
    def mailer(self) -> Any:
        """Outgoing mail over SMTP (a relay in production, the local sink in development)."""
        from shared.mail import SmtpMailer

        return SmtpMailer(self.settings)

    @functools.cached_property
    def vault(self) -> Any:
        """Seals and opens data-source credentials (data keys wrapped by KMS or ENCRYPTION_KEY)."""
        from shared.security.kek import kek_from_settings
        from shared.security.vault import Vault

        return Vault(kek_from_settings(self.settings))

    @property
    def bus(self) -> Any:
        """The message bus: Pub/Sub + Cloud Tasks with BUS=gcp, the local twin with BUS=local."""
        if self._bus is None:
            if self.settings.bus == "gcp":
                from shared.messaging.gcp import GcpBus

                self._bus = GcpBus(self.settings)
            else:
                from shared.messaging.local import LocalBus

                self._bus = LocalBus(self.settings)
        return self._bus


@functools.cache
def bootstrap() -> Runtime:
    """Validate settings and start logging (and Sentry): what every function does at import."""
    from shared.observability import configure_logging, configure_sentry

    settings = get_settings()
    configure_logging(settings.log_level)
    configure_sentry(settings.sentry_dsn, settings.environment)
    return Runtime(settings)
