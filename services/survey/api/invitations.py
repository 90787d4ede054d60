"""The tenant-scoped invitation API: where each survey invitation stands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from libs.common.deps import Tenant, UoW
from libs.common.events import FailureReason

invitations_router = APIRouter(tags=["invitations"])


InvitationStatusName = Literal["scheduled", "sending", "sent", "failed", "responded", "cancelled"]


class InvitationView(BaseModel):
    invitation_id: uuid.UUID
    customer_id: str
    touchpoint: str
    status: str
    attempts: int
    send_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    responded_at: datetime | None
    last_error: str | None
    failure_reason: FailureReason | None = Field(
        default=None, description="why a `failed` invitation was given up, as a code"
    )


class InvitationList(BaseModel):
    customer: str | None
    status: InvitationStatusName | None = None
    invitations: list[InvitationView]


@invitations_router.get("/v1/invitations")
async def get_invitations(
    tenant: Tenant,
    uow: UoW,
    customer: Annotated[
        str | None, Query(min_length=1, max_length=200, description="only this customer's")
    ] = None,
    status: Annotated[
        InvitationStatusName | None, Query(description="only those in this state, e.g. `failed`")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> InvitationList:
    """The tenant's survey invitations, newest first, optionally one customer's or those in one
    state: where delivery stands (`scheduled`, `sending`, `sent`, `failed` with `failure_reason`
    and the error, `responded`, `cancelled`) and when it was sent and answered.
    `?status=failed` lists the invitations that were given up."""
    rows = await uow.repository.invitations_of_tenant(
        tenant.tenant_id, customer=customer, status=status, limit=limit
    )
    return InvitationList(
        customer=customer,
        status=status,
        invitations=[
            InvitationView(
                invitation_id=row.id,
                customer_id=row.customer_id,
                touchpoint=row.touchpoint,
                status=row.status,
                attempts=row.attempts,
                send_at=row.send_at,
                expires_at=row.expires_at,
                sent_at=row.sent_at,
                responded_at=row.responded_at,
                last_error=row.last_error,
                failure_reason=row.failure_reason,
            )
            for row in rows
        ],
    )
