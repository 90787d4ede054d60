from __future__ import annotations

from pydantic import Field

from libs.common.config import ServiceSettings


class ScoringSettings(ServiceSettings):
    http_port: int = Field(default=8003, ge=1, le=65535)
