"""Application settings, read from the environment and `.env` (see `.env.example`)."""

from __future__ import annotations

import ipaddress
import os
import tempfile
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_NAME = "pixelgate"

# The value `.env.example` ships with. Good enough to develop with; `ENV=production` refuses it.
DEVELOPMENT_JWT_SECRET = "development-only-secret-change-me-0123456789abcdef"
MIN_JWT_SECRET_BYTES = 32
MIN_METRICS_TOKEN_CHARS = 16
# `.env.example`'s POSTGRES_PASSWORD, which docker-compose puts into DATABASE_URL.
EXAMPLE_POSTGRES_PASSWORD = "change-me-example-postgres-password"
# `.env.example`'s RABBITMQ_PASSWORD, which docker-compose puts into EVENTS_BROKER_URL and
# CELERY_BROKER_URL, and SEAWEEDFS_SECRET_ACCESS_KEY (compose's S3_SECRET_ACCESS_KEY).
EXAMPLE_RABBITMQ_PASSWORD = "change-me-example-rabbitmq-password"
EXAMPLE_S3_SECRET = "change-me-example-s3-secret"

CommaSeparated = Annotated[list[str], NoDecode]
FloatList = Annotated[list[float], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./data/app.db"

    jwt_secret_key: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    jwt_issuer: str = PROJECT_NAME
    jwt_audience: str = f"{PROJECT_NAME}-clients"
    access_token_expire_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(30, ge=1, le=365)
    bcrypt_rounds: int = Field(12, ge=4, le=31)

    password_min_length: int = Field(8, ge=1, le=72)
    password_max_bytes: int = Field(72, ge=8, le=72)
    password_require_upper: bool = True
    password_require_lower: bool = True
    password_require_digit: bool = True
    password_require_symbol: bool = True
    password_block_common: bool = True

    rate_limit_enabled: bool = True
    login_rate_limit: str = "5/minute"
    signup_rate_limit: str = "10/minute"
    refresh_rate_limit: str = "30/minute"
    rate_limit_storage_uri: str = "memory://"
    max_login_attempts: int = Field(5, ge=1)
    lockout_minutes: int = Field(15, ge=1)

    require_admin_mfa: bool = False
    # A Fernet key for the TOTP secrets at rest; unset: one is derived from JWT_SECRET_KEY.
    mfa_encryption_key: SecretStr | None = None

    cookie_secure: bool = False
    cors_origins: CommaSeparated = ["http://localhost:8501"]
    forwarded_allow_ips: CommaSeparated = []

    storage_dir: Path = Path("./data/images")
    max_upload_mb: int = Field(10, ge=1)
    max_image_pixels: int = Field(40_000_000, ge=1)
    process_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_queued_jobs: int = Field(100, ge=1)
    job_timeout_s: float = Field(60, gt=0)
    job_heartbeat_s: float = Field(10, gt=0)

    # Redis cache of authenticated lookups and the admin user list; empty = off.
    cache_url: SecretStr = SecretStr("")
    cache_ttl_s: float = Field(60, gt=0)

    # Domain events (api/events/): empty = handled inside each API process.
    events_broker_url: SecretStr = SecretStr("")
    events_poll_interval_s: float = Field(5, gt=0)
    # Waits before each retry of a failed event handler; then the event is `failed`.
    events_retry_delays_s: FloatList = [30, 60, 120, 300, 600, 900, 1200, 1800]
    events_claim_timeout_s: float = Field(300, gt=0)
    events_consumer_heartbeat_file: Path = Path(tempfile.gettempdir()) / "pixelgate-consumer.alive"

    processing_backend: Literal["local", "celery"] = "local"
    celery_broker_url: SecretStr | None = None
    # Celery replaces a pool process after a task once it holds more than this (0: never).
    worker_max_memory_per_child_mb: int = Field(2048, ge=0)

    storage_backend: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    storage_sweep_interval_s: float = Field(3600, gt=0)
    storage_orphan_grace_s: float = Field(3600, ge=0)

    admin_username: str | None = None
    admin_email: str | None = None
    admin_password: SecretStr | None = None

    api_base_url: str = "http://localhost:8000"
    public_dashboard_url: str = "http://localhost:8501"

    mail_backend: Literal["smtp", "file", "none"] = "file"
    mail_outbox_dir: Path = Path("./data/outbox")
    mail_from: str = "Pixelgate <no-reply@localhost>"
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_s: float = Field(10, gt=0)

    password_reset_expire_minutes: int = Field(30, ge=1)
    email_verify_expire_hours: int = Field(48, ge=1)
    reset_emails_per_hour: int = Field(3, ge=1)
    password_reset_rate_limit: str = "5/hour"
    require_verified_email: bool = False

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    slow_request_ms: int = Field(1000, ge=1)

    metrics_token: SecretStr | None = None
    worker_metrics_port: int = Field(9100, ge=1, le=65535)
    consumer_metrics_port: int = Field(9101, ge=1, le=65535)
    health_check_timeout_s: float = Field(2, gt=0, le=30)
    sentry_dsn: SecretStr | None = None

    _split_lists = field_validator(
        "cors_origins", "forwarded_allow_ips", "events_retry_delays_s", mode="before"
    )(_split_commas)

    @field_validator("events_retry_delays_s")
    @classmethod
    def _positive_delays(cls, value: list[float]) -> list[float]:
        if not value or any(delay <= 0 for delay in value):
            raise ValueError("must be one or more positive numbers of seconds")
        return value

    @field_validator("mfa_encryption_key")
    @classmethod
    def _valid_fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(value.get_secret_value())
            except ValueError:
                # Not Fernet's message, and never the value: it is a secret.
                raise ValueError(
                    "must be a Fernet key (32 url-safe base64-encoded bytes), e.g. from "
                    "`python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`"
                ) from None
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    # Not ipaddress's message: it quotes the value, and errors never do.
                    raise ValueError("each item must be an IP address, a network or *") from None
        return value

    @field_validator("public_dashboard_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        """Mail links start with it: an absolute http(s) URL, kept without a trailing slash."""
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parsed.query or parsed.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        _name, address = parseaddr(value)
        if "@" not in address:
            raise ValueError("must be an address such as `Pixelgate <no-reply@example.com>`")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(f"must be at least {MIN_METRICS_TOKEN_CHARS} characters long")
        return value

    @model_validator(mode="after")
    def _backends_need_their_settings(self) -> Settings:
        if self.processing_backend == "celery" and self.celery_broker_url is None:
            raise ValueError("PROCESSING_BACKEND=celery needs CELERY_BROKER_URL")
        if self.storage_backend == "s3":
            missing = [
                name.upper()
                for name in ("s3_bucket", "s3_access_key_id", "s3_secret_access_key")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"STORAGE_BACKEND=s3 needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _smtp_needs_a_host(self) -> Settings:
        if self.mail_backend == "smtp" and not self.smtp_host:
            raise ValueError("MAIL_BACKEND=smtp needs SMTP_HOST")
        return self

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> Settings:
        secret = self.jwt_secret_key.get_secret_value()
        if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET_KEY must be at least {MIN_JWT_SECRET_BYTES} bytes long")
        if self.env == "production" and secret == DEVELOPMENT_JWT_SECRET:
            raise ValueError(
                "JWT_SECRET_KEY is the development example value; set a random secret "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "before starting with ENV=production"
            )
        if self.env == "production" and f":{EXAMPLE_POSTGRES_PASSWORD}@" in self.database_url:
            raise ValueError(
                "DATABASE_URL uses the example POSTGRES_PASSWORD; set a random one in .env "
                "before starting with ENV=production"
            )
        broker_url = self.events_broker_url.get_secret_value()
        if self.env == "production" and f":{EXAMPLE_RABBITMQ_PASSWORD}@" in broker_url:
            raise ValueError(
                "EVENTS_BROKER_URL uses the example RABBITMQ_PASSWORD; set a random one in .env "
                "before starting with ENV=production"
            )
        celery_url = self.celery_broker_url.get_secret_value() if self.celery_broker_url else ""
        if self.env == "production" and f":{EXAMPLE_RABBITMQ_PASSWORD}@" in celery_url:
            raise ValueError(
                "CELERY_BROKER_URL uses the example RABBITMQ_PASSWORD; set a random one in .env "
                "before starting with ENV=production"
            )
        s3_secret = self.s3_secret_access_key
        if (
            self.env == "production"
            and self.storage_backend == "s3"
            and s3_secret is not None
            and s3_secret.get_secret_value() == EXAMPLE_S3_SECRET
        ):
            raise ValueError(
                "S3_SECRET_ACCESS_KEY is the example value; set a random one in .env before "
                "starting with ENV=production"
            )
        return self

    @property
    def refresh_cookie_name(self) -> str:
        return "refresh_token"

    @property
    def events_broker_enabled(self) -> bool:
        return bool(self.events_broker_url.get_secret_value())

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @cached_property
    def trusted_proxies(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
        """Networks whose X-Forwarded-For is believed; None means every peer (`*`)."""
        if "*" in self.forwarded_allow_ips:
            return None
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.forwarded_allow_ips)


class ConfigurationError(RuntimeError):
    """Settings are invalid; the message names the variables, never their values."""


def load_settings() -> Settings:
    """Settings from the environment, with errors that do not echo (secret) input values."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigurationError(f"Invalid configuration: {problems}") from None
