"""What the trigger's routes share: the settings as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from libs.common.http import runtime_of
from services.trigger.config import TriggerSettings


def _settings(request: Request) -> TriggerSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, TriggerSettings)
    return settings


Settings = Annotated[TriggerSettings, Depends(_settings)]
