"""``GET /v1/customers/{customer_id}/data``: reporting's part of a customer's export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from libs.common.deps import Tenant, UoW
from libs.common.privacy import CUSTOMER_ID_DOC, DATA_ROUTE_DOC, CustomerPart, customer_part
from services.reporting.repository import ReportingRepository

router = APIRouter(tags=["privacy"])


@router.get("/v1/customers/{customer_id}/data", description=DATA_ROUTE_DOC)
async def get_customer_data(
    tenant: Tenant,
    uow: UoW,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
) -> CustomerPart:
    """Reporting's sections: its read model's answers, purchases and cases of the customer."""
    repository: ReportingRepository = uow.repository
    return customer_part(
        "reporting", customer_id, await repository.customer_data(tenant.tenant_id, customer_id)
    )
