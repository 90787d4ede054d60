"""What the trigger's routes share beyond the common dependencies: its own settings, typed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from libs.common.deps import settings_of
from services.trigger.config import TriggerSettings

TriggerConfig = Annotated[TriggerSettings, Depends(settings_of(TriggerSettings))]
