"""Touchpoint commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from libs.common.db import UnitOfWork
from services.trigger.domain.touchpoints import DEFAULT_TOUCHPOINTS, coverage_warnings
from services.trigger.repository import TriggerRepository
from services.trigger.schemas import rule_from_stored


async def set_touchpoint(
    uow: UnitOfWork[TriggerRepository], tenant_id: uuid.UUID, name: str, config: dict[str, Any], now: datetime
) -> tuple[int, list[str]]:
    """Add a version of a touchpoint; return it with the warnings the change calls for (an intake
    event type that no touchpoint takes any more)."""
    repository = uow.repository
    had_own = bool(await repository.active_touchpoints(tenant_id))
    version = await repository.add_touchpoint_version(tenant_id, name, config, now)
    after = [
        rule_from_stored(t.name, t.version, t.config) for t in await repository.active_touchpoints(tenant_id)
    ]
    return version, coverage_warnings(after, replaced=() if had_own else DEFAULT_TOUCHPOINTS)
