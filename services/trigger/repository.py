"""Every query the trigger makes. Hot-path queries take a whole batch: one statement per batch."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger.models import COMMON, Customer, Decision, Policy


async def last_invitations(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], datetime]:
    if not keys:
        return {}
    rows = await session.execute(
        select(Customer.tenant_id, Customer.customer_id, Customer.last_invited_at).where(
            tuple_(Customer.tenant_id, Customer.customer_id).in_(list(set(keys))),
            Customer.last_invited_at.is_not(None),
        )
    )
    return {(row.tenant_id, row.customer_id): row.last_invited_at for row in rows}


async def rest_periods(session: AsyncSession, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(Policy.tenant_id, Policy.rest_period_days).where(Policy.tenant_id.in_(list(set(tenant_ids))))
    )
    return {row.tenant_id: row.rest_period_days for row in rows}


async def set_rest_period(session: AsyncSession, tenant_id: uuid.UUID, days: int) -> None:
    statement = pg_insert(Policy).values(tenant_id=tenant_id, rest_period_days=days)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[Policy.tenant_id], set_={"rest_period_days": days})
    )


async def touch_customers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert customers; ``last_invited_at`` only moves when the row says it was invited."""
    if not rows:
        return
    statement = pg_insert(Customer).values(list(rows))
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Customer.tenant_id, Customer.customer_id],
            set_={
                "last_event_at": excluded.last_event_at,
                "last_invited_at": func.coalesce(excluded.last_invited_at, Customer.last_invited_at),
            },
        )
    )


async def record_decisions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(pg_insert(Decision).values(list(rows)).on_conflict_do_nothing())


async def decisions_for_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: str, limit: int
) -> Sequence[Decision]:
    result = await session.scalars(
        select(Decision)
        .where(Decision.tenant_id == tenant_id, Decision.customer_id == customer_id)
        .order_by(Decision.decided_at.desc(), Decision.id.desc())
        .limit(limit)
    )
    return result.all()


async def known_tenants(session: AsyncSession, tenant_ids: Sequence[str]) -> set[str]:
    valid = []
    for value in set(tenant_ids):
        try:
            valid.append(uuid.UUID(value))
        except ValueError:
            continue
    if not valid:
        return set()
    rows = await session.scalars(select(COMMON.tenants.c.id).where(COMMON.tenants.c.id.in_(valid)))
    return {str(tenant_id) for tenant_id in rows}


async def tenant_by_name_or_id(session: AsyncSession, name_or_id: str) -> Any:
    table = COMMON.tenants
    condition = table.c.name == name_or_id
    with contextlib.suppress(ValueError):
        condition = condition | (table.c.id == uuid.UUID(name_or_id))
    return (await session.execute(select(table).where(condition))).first()


async def list_tenants(session: AsyncSession) -> Sequence[Any]:
    return (await session.execute(select(COMMON.tenants).order_by(COMMON.tenants.c.created_at))).all()


async def insert_tenant(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(COMMON.tenants.insert().values(**values))


async def insert_api_key(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(COMMON.api_keys.insert().values(**values))


async def revoke_api_key(session: AsyncSession, key_id: str, at: datetime) -> uuid.UUID | None:
    table = COMMON.api_keys
    tenant_id: uuid.UUID | None = await session.scalar(
        table.update()
        .where(table.c.key_id == key_id, table.c.revoked_at.is_(None))
        .values(revoked_at=at)
        .returning(table.c.tenant_id)
    )
    return tenant_id
