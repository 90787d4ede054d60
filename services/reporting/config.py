from __future__ import annotations

from pydantic import Field

from libs.common.config import ServiceSettings


class ReportingSettings(ServiceSettings):
    http_port: int = Field(default=8005, ge=1, le=65535)
