"""``GET /v1/customers/{customer_id}/data``: alerting's part of a customer's export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from libs.common.deps import Tenant, UoW
from libs.common.privacy import (
    CUSTOMER_ID_DOC,
    DATA_ROUTE_DOC,
    SECTION_LIMIT,
    AfterParam,
    CustomerPart,
    LimitParam,
    SectionParam,
    data_answer,
)
from services.alerting.repository import AlertingRepository

router = APIRouter(tags=["privacy"])


@router.get("/v1/customers/{customer_id}/data", description=DATA_ROUTE_DOC)
async def get_customer_data(
    tenant: Tenant,
    uow: UoW,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
    section: SectionParam = None,
    after: AfterParam = None,
    limit: LimitParam = SECTION_LIMIT,
) -> CustomerPart:
    """Alerting's sections: cases, notes, contacts, the rest of the cases' timelines, the emails
    and chat messages about the cases, its copy of the answers and the webhook deliveries."""
    repository: AlertingRepository = uow.repository
    return await data_answer(
        "alerting",
        customer_id,
        lambda: repository.customer_data(
            tenant.tenant_id, customer_id, section=section, after=after, limit=limit
        ),
        limit=limit,
    )
