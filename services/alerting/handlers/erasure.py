"""Alerting's part of a customer's erasure (README, "Privacy: erasure")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.events import ErasureRequested
from services.alerting.repository import AlertingRepository


async def erase_customer(
    uow: UnitOfWork[Any], tenant_id: uuid.UUID, request: ErasureRequested, now: datetime
) -> dict[str, int]:
    """Cases, timelines, answers and emails about the customer are anonymised; the cases stay, so
    the desk's and the report's case counts are unchanged. Their outbound webhook deliveries keep
    only their type and time, and those not yet delivered are not sent."""
    repository: AlertingRepository = uow.repository
    counts = await repository.erase_customer(tenant_id, request.customer_id, now)
    counts["webhook_deliveries"] = await repository.erase_customer_deliveries(tenant_id, request.customer_id)
    return counts
