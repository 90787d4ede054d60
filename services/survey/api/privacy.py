"""``GET /v1/customers/{customer_id}/data``: the survey's part of a customer's export."""

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
from services.survey.repository import SurveyRepository

privacy_router = APIRouter(tags=["privacy"])


@privacy_router.get("/v1/customers/{customer_id}/data", description=DATA_ROUTE_DOC)
async def get_customer_data(
    tenant: Tenant,
    uow: UoW,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
    section: SectionParam = None,
    after: AfterParam = None,
    limit: LimitParam = SECTION_LIMIT,
) -> CustomerPart:
    """The survey's sections: invitations, answers, comments, follow-up answers and suppression
    (one page, whatever the customer holds: `[{"unsubscribed": true|false}]`)."""
    repository: SurveyRepository = uow.repository
    return await data_answer(
        "survey",
        customer_id,
        lambda: repository.customer_data(
            tenant.tenant_id, customer_id, section=section, after=after, limit=limit
        ),
        limit=limit,
    )
