from __future__ import annotations

from pydantic import Field, field_validator

from libs.common.config import ServiceSettings


class TriggerSettings(ServiceSettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
    default_rest_period_days: int = Field(default=180, ge=0, le=3650)
    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    cohort_check_seconds: float = Field(default=300, gt=0, description="how often account cohorts are drawn")
    #: Where the trigger reaches the other services' APIs for a customer's export
    #: (``GET /v1/customers/{id}/export`` gathers their ``/v1/customers/{id}/data``). ``make run``
    #: sets them to its own ports; behind a proxy, the services' internal addresses.
    survey_api_url: str = "http://127.0.0.1:8002"
    scoring_api_url: str = "http://127.0.0.1:8003"
    alerting_api_url: str = "http://127.0.0.1:8004"
    reporting_api_url: str = "http://127.0.0.1:8005"
    #: How long the export waits for each service's part before answering 503 naming it.
    export_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("survey_api_url", "scoring_api_url", "alerting_api_url", "reporting_api_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a service's API URL starts with http:// or https://")
        return value.rstrip("/")
