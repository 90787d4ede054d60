"""``GET /v1/customers/{customer_id}/data``: reporting's part of a customer's export."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from libs.common.deps import Tenant, UoW
from libs.common.privacy import (
    CUSTOMER_ID_DOC,
    DATA_ROUTE_DOC,
    SECTION_LIMIT,
    AfterParam,
    CustomerPart,
    LimitParam,
    PageRequestError,
    Section,
    SectionParam,
    data_answer,
)
from services.reporting.repository import ReportingRepository

router = APIRouter(tags=["privacy"])

#: Invitation ids one call may name: the export asks in pages of this many.
FUNNEL_INVITATIONS = 100


@router.get("/v1/customers/{customer_id}/data", description=DATA_ROUTE_DOC)
async def get_customer_data(
    tenant: Tenant,
    uow: UoW,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
    section: SectionParam = None,
    after: AfterParam = None,
    limit: LimitParam = SECTION_LIMIT,
    invitation_id: Annotated[
        list[uuid.UUID],
        Query(
            max_length=FUNNEL_INVITATIONS,
            description="with `section=funnel`: the customer's invitations (from the survey's part), "
            f"at most {FUNNEL_INVITATIONS} a call",
        ),
    ] = [],  # noqa: B006 - FastAPI copies a query default
) -> CustomerPart:
    """Reporting's sections: its read model's answers, purchases and cases of the customer, and
    `funnel`, the facts of the invitations named by `invitation_id` (reporting keeps them by
    invitation; the export names the survey's invitations of the customer, a page at a time)."""
    repository: ReportingRepository = uow.repository

    async def read() -> dict[str, Section]:
        if section == "funnel":
            if after is not None:
                raise PageRequestError("after", "the funnel section is the page of the invitations named")
            return {"funnel": await repository.funnel_facts(tenant.tenant_id, invitation_id)}
        pages = await repository.customer_data(
            tenant.tenant_id, customer_id, section=section, after=after, limit=limit
        )
        return (
            pages
            if section is not None
            else {**pages, "funnel": await repository.funnel_facts(tenant.tenant_id, invitation_id)}
        )

    return await data_answer("reporting", customer_id, read, limit=limit)
