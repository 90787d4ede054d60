"""The tenant admin API: tenants and their API keys, behind the platform's admin token."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from libs.common.deps import Settings, UoW
from libs.common.events import Email
from libs.common.http import error_responses
from services.trigger import handlers
from services.trigger.repository import TriggerRepository

router = APIRouter(prefix="/v1/admin", tags=["admin"])


_admin_token = APIKeyHeader(
    name="X-Admin-Token", auto_error=False, scheme_name="AdminToken", description="the platform's admin token"
)


async def require_admin(settings: Settings, token: Annotated[str | None, Security(_admin_token)]) -> None:
    presented = token or ""
    expected = settings.admin_token.get_secret_value()
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong admin token: send 'X-Admin-Token'")


Admin = Annotated[None, Depends(require_admin)]


DisplayName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    owner_email: Email | None = Field(default=None, description="who gets follow-up cases by default")
    display_name: DisplayName | None = Field(
        default=None,
        description="how emails and pages name the company, e.g. 'Acme Inc.'; the name if left out",
    )


class TenantChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName | None = Field(default=None, description="null removes it")
    owner_email: Email | None = Field(default=None, description="null removes it")


@router.post("/tenants", status_code=201, responses=error_responses(409))
async def admin_create_tenant(_: Admin, uow: UoW, body: NewTenant) -> dict[str, str | None]:
    """Create a tenant. Every service learns of it through `tenant.created.v1`."""
    try:
        tenant_id = await handlers.create_tenant(
            uow,
            name=body.name,
            owner_email=body.owner_email,
            now=datetime.now(UTC),
            display_name=body.display_name,
        )
    except handlers.TenantExists:
        raise HTTPException(409, f"a tenant named {body.name!r} exists already") from None
    await uow.commit()
    return {
        "tenant_id": str(tenant_id),
        "name": body.name,
        "owner_email": body.owner_email,
        "display_name": body.display_name,
    }


@router.patch("/tenants/{tenant}")
async def admin_update_tenant(_: Admin, uow: UoW, tenant: str, body: TenantChange) -> dict[str, Any]:
    """Change a tenant's display name or owner email (by name or id). Only the fields sent change;
    every service learns of it through `tenant.updated.v1`."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    try:
        updated = await handlers.update_tenant(uow, tenant=tenant, now=datetime.now(UTC), **changes)
    except handlers.UnknownTenant:
        raise HTTPException(404, f"no tenant {tenant!r}") from None
    await uow.commit()
    return updated


@router.get("/tenants")
async def admin_list_tenants(_: Admin, uow: UoW) -> list[dict[str, Any]]:
    """Every tenant."""
    repository: TriggerRepository = uow.repository
    rows = await repository.list_tenants()
    return [
        {
            "tenant_id": str(r.id),
            "name": r.name,
            "owner_email": r.owner_email,
            "display_name": r.display_name,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


@router.post("/tenants/{tenant}/api-keys", status_code=201)
async def admin_create_api_key(_: Admin, uow: UoW, tenant: str) -> dict[str, str]:
    """Create an API key for a tenant (by name or id). The key is in this answer only; it is
    stored as a hash."""
    try:
        tenant_id, key = await handlers.create_api_key(uow, tenant=tenant, now=datetime.now(UTC))
    except handlers.UnknownTenant:
        raise HTTPException(404, f"no tenant {tenant!r}") from None
    await uow.commit()
    return {"tenant_id": str(tenant_id), "key_id": key.key_id, "api_key": key.secret}


@router.delete("/api-keys/{key_id}", status_code=204)
async def admin_revoke_api_key(_: Admin, uow: UoW, key_id: str) -> Response:
    """Revoke a key. Services stop accepting it within 30 seconds."""
    if not await handlers.revoke_api_key(uow, key_id=key_id, now=datetime.now(UTC)):
        raise HTTPException(404, f"no active API key {key_id!r}")
    await uow.commit()
    return Response(status_code=204)
