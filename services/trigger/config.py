from __future__ import annotations

from pydantic import Field

from libs.common.config import ServiceSettings


class TriggerSettings(ServiceSettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
    default_rest_period_days: int = Field(default=180, ge=0, le=3650)
    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    cohort_check_seconds: float = Field(default=300, gt=0, description="how often account cohorts are drawn")
