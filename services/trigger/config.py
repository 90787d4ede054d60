from __future__ import annotations

from pydantic import Field, model_validator

from libs.common.config import ServiceSettings


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
