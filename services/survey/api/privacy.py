"""``GET /v1/customers/{customer_id}/data``: the survey's part of a customer's export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from libs.common.deps import Tenant, UoW
from libs.common.privacy import CUSTOMER_ID_DOC, DATA_ROUTE_DOC, CustomerPart, customer_part
from services.survey.repository import SurveyRepository

privacy_router = APIRouter(tags=["privacy"])


@privacy_router.get("/v1/customers/{customer_id}/data", description=DATA_ROUTE_DOC)
async def get_customer_data(
    tenant: Tenant,
    uow: UoW,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
) -> CustomerPart:
    """The survey's sections: invitations, answers, comments, follow-up answers and suppression."""
    repository: SurveyRepository = uow.repository
    sections = await repository.customer_data(tenant.tenant_id, customer_id)
    return customer_part("survey", customer_id, sections)
