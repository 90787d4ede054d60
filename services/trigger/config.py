from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from libs.common.config import ServiceSettings
from libs.common.privacy import DEV_PRIVACY_HASH_KEY

#: As the survey's token secret: shorter keys are refused in production.
MIN_PRIVACY_HASH_KEY_LENGTH = 32


class TriggerSettings(ServiceSettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
    default_rest_period_days: int = Field(default=180, ge=0, le=3650)
    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    cohort_check_seconds: float = Field(default=300, gt=0, description="how often account cohorts are drawn")
    #: Where BigCommerce orders and customers are fetched from (``/stores/{hash}/v2/orders/{id}``).
    bigcommerce_api_url: str = "https://api.bigcommerce.com"
    #: Development and tests only: fetch from private addresses (a local stand-in for a store's API).
    #: Refused in production.
    outbound_allow_private: bool = False
    order_fetch_poll_seconds: float = Field(default=0.5, gt=0)
    order_fetch_batch_size: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _private_outbound_only_in_development(self) -> TriggerSettings:
        if self.outbound_allow_private and self.nps_env == "production":
            raise ValueError("OUTBOUND_ALLOW_PRIVATE must not be set in production: it would allow SSRF")
        return self

    #: Where the trigger reaches the other services' APIs for a customer's export
    #: (``GET /v1/customers/{id}/export`` gathers their ``/v1/customers/{id}/data``). ``make run``
    #: sets them to its own ports; behind a proxy, the services' internal addresses.
    survey_api_url: str = "http://127.0.0.1:8002"
    scoring_api_url: str = "http://127.0.0.1:8003"
    alerting_api_url: str = "http://127.0.0.1:8004"
    reporting_api_url: str = "http://127.0.0.1:8005"
    #: The key of the unsubscribe records kept by address (``email:<hash>`` customers), the same
    #: PRIVACY_HASH_KEY as the survey's: changing it forgets those unsubscribes.
    privacy_hash_key: SecretStr = SecretStr(DEV_PRIVACY_HASH_KEY)
    #: How long the export waits for each service's part before answering 503 naming it.
    export_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("survey_api_url", "scoring_api_url", "alerting_api_url", "reporting_api_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a service's API URL starts with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _real_hash_key_in_production(self) -> TriggerSettings:
        if (
            self.nps_env == "production"
            and len(self.privacy_hash_key.get_secret_value()) < MIN_PRIVACY_HASH_KEY_LENGTH
        ):
            raise ValueError(
                f"PRIVACY_HASH_KEY must be at least {MIN_PRIVACY_HASH_KEY_LENGTH} characters "
                "(NPS_ENV=production)"
            )
        return self

    def secret_values(self) -> dict[str, str]:
        return {**super().secret_values(), "privacy_hash_key": self.privacy_hash_key.get_secret_value()}
