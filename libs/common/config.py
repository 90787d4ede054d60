"""Settings shared by every service, read from the environment at start-up (never at import)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.db import InvalidDatabaseUrl, engine_url_and_connect_args

# Values that ship in examples and docs. They are fine on a laptop and fatal in production.
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "admin", "dev", "dev-admin-token", "password"}
)

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@/nps?host=/tmp"

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def normalise_database_url(url: str) -> str:
    """Accept the URL forms users paste (postgres://, postgresql://) and use the asyncpg driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class ServiceSettings(BaseSettings):
    """The settings every service has. Each service subclasses it and adds its own."""

    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        # A refused DATABASE_URL or SMTP_URL would print its password in the start-up error.
        hide_input_in_errors=True,
    )

    nps_env: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1, le=200)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = False
    kafka_client_id: str | None = None
    #: How every producer, consumer and admin client talks to the brokers (``kafka_client_options``
    #: in ``libs/common/kafka.py`` applies it). TLS: ``SSL``/``SASL_SSL``, verified against
    #: KAFKA_SSL_CAFILE or, without one, the system's CAs; a client certificate is
    #: KAFKA_SSL_CERTFILE with KAFKA_SSL_KEYFILE (mutual TLS).
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Consumer groups are <prefix>.<service>.<consumer>; a separate environment on a shared cluster
    # needs its own prefix, or it would steal the other's partitions.
    kafka_group_prefix: str = Field(default="nps", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    #: How long the broker may hold a consumer's fetch that found nothing. Tansu (the embedded
    #: broker) is not woken by a record arriving: it looks again at intervals within this wait, so a
    #: record waits up to about half of it on each hop (aiokafka's 500 put up to ~250 ms on each of
    #: the two hops from an answer to the live score). An idle consumer sends 1000 / this fetches a
    #: second; busy ones are served sooner too (bench.alerting_cases at 200 answers/s).
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=10, le=5_000)
    smtp_url: str = "smtp://127.0.0.1:1025"
    admin_token: SecretStr = Field(default=SecretStr("dev-admin-token"), validation_alias="NPS_ADMIN_TOKEN")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    #: Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's setting: addresses
    #: or networks, comma-separated, or "*"). Behind a load balancer, name it, or every client
    #: has the balancer's address.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    broker_epoch: str | None = Field(default=None, validation_alias="NPS_BROKER_EPOCH")
    migrate_on_start: bool = Field(default=True, validation_alias="NPS_MIGRATE_ON_START")
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: A consumed message larger than this is dead-lettered undecoded (a truncated copy).
    consumer_max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: How long an event of a tenant this service has not heard of waits for the tenant's
    #: ``tenant.created`` before it is dead-lettered.
    unknown_tenant_hold_seconds: float = Field(default=900.0, gt=0)
    #: Days the key of a DLQ copy whose customer cannot be told (not JSON, no ``customer_id``) is
    #: kept; after that the copy cannot be read (libs/common/sealing.py). Attributed copies' keys
    #: are kept until their customer is erased.
    dlq_unattributed_key_days: int = Field(default=30, ge=1, le=3650)
    #: Where people reach the case desk (alerting) and the report (reporting): links in emails and
    #: chat messages, and between the two pages. Behind a proxy, the public addresses.
    #: How often the retention job (libs/common/retention.py) looks for rows past their tenant's
    #: retention when its last cycle found less than a batch (survey, alerting, reporting).
    retention_poll_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    desk_public_url: str = "http://127.0.0.1:8004"
    report_public_url: str = "http://127.0.0.1:8005"

    @field_validator("desk_public_url", "report_public_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a public URL starts with http:// or https://")
        return value.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        """Cookies are ``Secure`` everywhere but on a developer's machine (plain http://127.0.0.1)."""
        return self.nps_env != "development"

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        url = normalise_database_url(value)
        try:
            engine_url_and_connect_args(url)
        except InvalidDatabaseUrl as error:
            raise ValueError(f"DATABASE_URL: {error}") from None
        return url

    @model_validator(mode="after")
    def _kafka_security_is_consistent(self) -> ServiceSettings:
        protocol = self.kafka_security_protocol
        sasl = {
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        files = {
            "KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        # A setting the chosen protocol ignores is a mistake that would otherwise show up only as
        # a broker refusing the connection, or worse, as credentials never being sent.
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        else:
            given = [name for name, value in sasl.items() if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={protocol} sends no SASL "
                    f"credentials; use SASL_SSL (or SASL_PLAINTEXT)"
                )
        if not protocol.endswith("SSL"):
            given = [name for name, value in files.items() if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS; "
                    f"use SSL or SASL_SSL"
                )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (a client certificate and its key)"
            )
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        if protocol.endswith("SSL"):
            # Read them now: a bad file found when the producer starts is found too late to say so.
            try:
                context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
                if self.kafka_ssl_certfile is not None:
                    context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
            except ssl.SSLError as error:
                raise ValueError(f"KAFKA_SSL_* files are not usable PEM files: {error}") from None
        if (
            self.nps_env == "production"
            and protocol == "SASL_PLAINTEXT"
            and self.kafka_sasl_mechanism == "PLAIN"
        ):
            raise ValueError(
                "KAFKA_SASL_MECHANISM=PLAIN over KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends the "
                "password in clear text; use SASL_SSL (or a SCRAM mechanism) in production"
            )
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> ServiceSettings:
        if self.nps_env == "development":
            return self
        for name, value in self.secret_values().items():
            if value.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name.upper()} is a placeholder; set a real secret (NPS_ENV={self.nps_env})"
                )
        return self

    def secret_values(self) -> dict[str, str]:
        """Secrets that must not keep a placeholder value outside development. Subclasses extend it."""
        secrets = {"nps_admin_token": self.admin_token.get_secret_value()}
        if self.kafka_sasl_password is not None:
            secrets["kafka_sasl_password"] = self.kafka_sasl_password.get_secret_value()
        return secrets
