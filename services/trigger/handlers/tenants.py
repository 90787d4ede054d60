"""The tenant registry: tenants and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.events import ApiKeyCreated, ApiKeyRevoked, TenantCreated, TenantUpdated
from libs.common.tenancy import NewApiKey, generate_api_key
from services.trigger.repository import TenantRecord, TriggerRepository


class TenantExists(Exception):
    pass


class UnknownTenant(Exception):
    pass


async def create_tenant(
    uow: UnitOfWork[TriggerRepository],
    *,
    name: str,
    owner_email: str | None,
    now: datetime,
    display_name: str | None = None,
) -> uuid.UUID:
    if await uow.repository.tenant_by_name_or_id(name) is not None:
        raise TenantExists(name)
    tenant_id = uuid.uuid4()
    data = TenantCreated(
        tenant_id=tenant_id, name=name, owner_email=owner_email, created_at=now, display_name=display_name
    )
    await uow.repository.insert_tenant(TenantRecord(tenant_id, name, owner_email, now, display_name))
    uow.emit(data, tenant_id=tenant_id, subject=str(tenant_id))
    return tenant_id


#: "Leave it as it is" for :func:`update_tenant`, distinct from ``None`` ("remove it").
KEEP: Any = object()


async def update_tenant(
    uow: UnitOfWork[TriggerRepository],
    *,
    tenant: str,
    now: datetime,
    display_name: Any = KEEP,
    owner_email: Any = KEEP,
) -> dict[str, Any]:
    """Change a tenant's display name or owner email; every service hears of it (``tenant.updated``)."""
    row = await uow.repository.tenant_by_name_or_id(tenant)
    if row is None:
        raise UnknownTenant(tenant)
    values = {
        "display_name": row.display_name if display_name is KEEP else display_name,
        "owner_email": row.owner_email if owner_email is KEEP else owner_email,
    }
    await uow.repository.update_tenant(row.id, **values)
    data = TenantUpdated(tenant_id=row.id, name=row.name, updated_at=now, **values)
    uow.emit(data, tenant_id=row.id, subject=str(row.id))
    return {"tenant_id": str(row.id), "name": row.name, **values}


async def create_api_key(
    uow: UnitOfWork[TriggerRepository], *, tenant: str, now: datetime
) -> tuple[uuid.UUID, NewApiKey]:
    row = await uow.repository.tenant_by_name_or_id(tenant)
    if row is None:
        raise UnknownTenant(tenant)
    key = generate_api_key()
    await uow.repository.insert_api_key(
        key_id=key.key_id, tenant_id=row.id, key_hash=key.key_hash, created_at=now
    )
    data = ApiKeyCreated(key_id=key.key_id, tenant_id=row.id, key_hash=key.key_hash, created_at=now)
    uow.emit(data, tenant_id=row.id, subject=str(row.id))
    return row.id, key


async def revoke_api_key(uow: UnitOfWork[TriggerRepository], *, key_id: str, now: datetime) -> bool:
    tenant_id = await uow.repository.revoke_api_key(key_id, now)
    if tenant_id is None:
        return False
    data = ApiKeyRevoked(key_id=key_id, tenant_id=tenant_id, revoked_at=now)
    uow.emit(data, tenant_id=tenant_id, subject=str(tenant_id))
    return True
