"""Tenants and API keys as every service sees them.

The trigger service owns the tenant registry (admin API and ``nps`` CLI). It publishes
``tenant.created``, ``apikey.created`` (carrying only the key's SHA-256) and ``apikey.revoked`` on
``nps.tenants``; every other service keeps its own copy from those events. So one API key works
against every service, no service reads another's tables, and a key's secret is stored nowhere.

A key looks like ``nps_<16 hex key id>_<43 url-safe chars>``: the id finds the row, the whole key
is hashed. SHA-256 (not a slow password hash) is right here: the secret has 256 bits of entropy,
so there is nothing to brute-force, and the check stays cheap on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from libs.common.db import Database, UnitOfWork
from libs.common.events import (
    APIKEY_CREATED,
    APIKEY_REVOKED,
    TENANT_CREATED,
    TENANT_RETENTION_SET,
    TENANT_UPDATED,
    ApiKeyCreated,
    ApiKeyRevoked,
    Event,
    TenantCreated,
    TenantRetentionSet,
    TenantUpdated,
)
from libs.common.kafka import EventHandler

_KEY = re.compile(r"^nps_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    secret: str  # the whole key, shown once
    key_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    key_id = secrets.token_hex(8)
    key = f"nps_{key_id}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key_id=key_id, secret=key, key_hash=hash_key(key))


def parse_key_id(key: str) -> str | None:
    match = _KEY.match(key)
    return match.group(1) if match else None


@dataclass(frozen=True)
class TenantContext:
    tenant_id: uuid.UUID
    key_id: str

    @property
    def id(self) -> str:
        return str(self.tenant_id)


class ApiKeyVerifier:
    """Checks a presented key against this service's copy of the key table.

    Verified keys are cached for ``ttl`` seconds, so a revocation takes effect within that time.
    """

    def __init__(self, database: Database, ttl: float = 30.0) -> None:
        self._database = database
        self._ttl = ttl
        self._cache: dict[str, tuple[float, TenantContext]] = {}

    async def verify(self, presented: str) -> TenantContext | None:
        key_id = parse_key_id(presented)
        if key_id is None:
            return None
        presented_hash = hash_key(presented)
        cached = self._cache.get(presented_hash)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        table = self._database.tables.api_keys
        async with self._database.sessions() as session:
            row = (
                await session.execute(
                    select(table.c.tenant_id, table.c.key_hash, table.c.revoked_at).where(
                        table.c.key_id == key_id
                    )
                )
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.key_hash, presented_hash):
            return None
        context = TenantContext(tenant_id=row.tenant_id, key_id=key_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[presented_hash] = (now + self._ttl, context)
        return context


# --- Keeping this service's copy of the registry ------------------------------------------------


async def on_tenant_created(event: Event[TenantCreated], uow: UnitOfWork[Any]) -> None:
    data = event.data
    table = uow.tables.tenants
    values: dict[str, Any] = {
        "id": data.tenant_id,
        "name": data.name,
        "owner_email": data.owner_email,
        "created_at": data.created_at,
        "display_name": data.display_name,
    }
    await uow.session.execute(
        pg_insert(table)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[table.c.id],
            set_={"name": data.name, "owner_email": data.owner_email, "display_name": data.display_name},
        )
    )


async def on_tenant_updated(event: Event[TenantUpdated], uow: UnitOfWork[Any]) -> None:
    """The whole current state, so applying a repeat changes nothing. An update cannot come before
    its tenant's creation: both travel in order on the one partition of ``nps.tenants``."""
    data = event.data
    table = uow.tables.tenants
    await uow.session.execute(
        table.update()
        .where(table.c.id == data.tenant_id)
        .values(name=data.name, owner_email=data.owner_email, display_name=data.display_name)
    )


async def on_tenant_retention_set(event: Event[TenantRetentionSet], uow: UnitOfWork[Any]) -> None:
    """The whole current retention; the tenant's creation comes first on the same partition."""
    data = event.data
    table = uow.tables.tenants
    await uow.session.execute(
        table.update()
        .where(table.c.id == data.tenant_id)
        .values(
            retention_comments_months=data.comments_months,
            retention_invitations_months=data.invitations_months,
        )
    )


async def on_api_key_created(event: Event[ApiKeyCreated], uow: UnitOfWork[Any]) -> None:
    data = event.data
    table = uow.tables.api_keys
    await uow.session.execute(
        pg_insert(table)
        .values(
            key_id=data.key_id, tenant_id=data.tenant_id, key_hash=data.key_hash, created_at=data.created_at
        )
        .on_conflict_do_nothing()
    )


async def on_api_key_revoked(event: Event[ApiKeyRevoked], uow: UnitOfWork[Any]) -> None:
    table = uow.tables.api_keys
    await uow.session.execute(
        table.update()
        .where(table.c.key_id == event.data.key_id, table.c.tenant_id == event.data.tenant_id)
        .values(revoked_at=event.data.revoked_at)
    )


TENANCY_HANDLERS: dict[str, EventHandler] = {
    TENANT_CREATED: on_tenant_created,
    TENANT_UPDATED: on_tenant_updated,
    TENANT_RETENTION_SET: on_tenant_retention_set,
    APIKEY_CREATED: on_api_key_created,
    APIKEY_REVOKED: on_api_key_revoked,
}


async def tenant_owner_email(uow: UnitOfWork[Any], tenant_id: uuid.UUID) -> str | None:
    table = uow.tables.tenants
    value = await uow.session.scalar(select(table.c.owner_email).where(table.c.id == tenant_id))
    return value


async def tenant_display_name(uow: UnitOfWork[Any], tenant_id: uuid.UUID) -> str | None:
    """How the company is named to its customers: its display name, else its name."""
    table = uow.tables.tenants
    value: str | None = await uow.session.scalar(
        select(func.coalesce(table.c.display_name, table.c.name)).where(table.c.id == tenant_id)
    )
    return value
