from __future__ import annotations

from pydantic import Field

from libs.common.config import ServiceSettings


class ScoringSettings(ServiceSettings):
    http_port: int = Field(default=8003, ge=1, le=65535)
    #: Label the score gauges by tenant (services/scoring/gauges.py); off, they sum all tenants.
    metrics_tenant_labels: bool = False
    #: The most (tenant,) touchpoint series the score gauges name; the rest are summed as "other".
    metrics_max_series: int = Field(default=100, ge=1, le=10_000)
    metrics_refresh_seconds: float = Field(default=15.0, gt=0)
