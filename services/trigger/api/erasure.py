"""HTTP routes of the right to erasure: ask for a customer's erasure, and read its receipt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from libs.common.deps import Tenant, UoW
from libs.common.http import error_responses
from services.trigger.api.dependencies import TriggerConfig
from services.trigger.handlers.erasure import request_erasure
from services.trigger.models import Erasure
from services.trigger.repository import TriggerRepository

router = APIRouter()

CustomerId = Annotated[str, Path(min_length=1, max_length=200, description="the tenant's own customer id")]


def receipt(erasure: Erasure) -> dict[str, Any]:
    """What an erasure receipt shows: when it was asked and finished, and each service's part (its
    status, time and counts of rows removed or anonymised). Never the customer's id, address or
    name: the receipt is kept after the customer is gone."""
    return {
        "erasure_id": str(erasure.id),
        "status": "completed" if erasure.completed_at is not None else "pending",
        "requested_at": erasure.requested_at.isoformat(),
        "received_at": erasure.received_at.isoformat(),
        "completed_at": erasure.completed_at.isoformat() if erasure.completed_at else None,
        "origin": erasure.origin,
        "services": erasure.services,
    }


@router.delete(
    "/v1/customers/{customer_id}", status_code=202, tags=["privacy"], responses=error_responses(422)
)
async def erase_customer(
    tenant: Tenant, uow: UoW, settings: TriggerConfig, customer_id: CustomerId
) -> dict[str, Any]:
    """Erase a customer (GDPR art. 17): every service removes or anonymises what it holds about
    them, within a minute. Answers 202 with the receipt's id; `GET /v1/erasures/{erasure_id}` shows
    its progress. A customer never heard of gets a receipt too, with zero counts: whether somebody is
    known is not told by the answer. Events about the customer from before now that arrive later
    are not taken in; a purchase made after it is new data."""
    customer = customer_id.strip()
    if not customer:
        raise HTTPException(422, "customer_id: must not be blank")
    now = datetime.now(UTC)
    erasure = await request_erasure(
        uow,
        tenant.tenant_id,
        customer,
        requested_at=now,
        now=now,
        secret=settings.privacy_hash_key.get_secret_value(),
        origin="api",
    )
    await uow.commit()
    return receipt(erasure)


@router.get("/v1/erasures/{erasure_id}", tags=["privacy"], responses=error_responses(404))
async def get_erasure(tenant: Tenant, uow: UoW, erasure_id: uuid.UUID) -> dict[str, Any]:
    """An erasure's receipt: `pending` until every service has done its part, then `completed`."""
    repository: TriggerRepository = uow.repository
    erasure = await repository.erasure(tenant.tenant_id, erasure_id)
    if erasure is None:
        raise HTTPException(404, f"no erasure {erasure_id}")
    return receipt(erasure)
