"""Every query the trigger makes. Hot-path queries take a whole batch: one statement per batch."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, Uuid, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.db import copy_rows
from services.trigger.models import COMMON, Customer, Decision, Policy


async def last_invitations(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], datetime]:
    if not keys:
        return {}
    wanted = set(keys)
    # Two array parameters keep this one cached statement on the primary key, whatever the batch.
    rows = await session.execute(
        select(Customer.tenant_id, Customer.customer_id, Customer.last_invited_at).where(
            Customer.tenant_id == any_(bindparam("tenants", list({t for t, _ in wanted}), type_=ARRAY(Uuid))),
            Customer.customer_id
            == any_(bindparam("customers", list({c for _, c in wanted}), type_=ARRAY(Text))),
            Customer.last_invited_at.is_not(None),
        )
    )
    return {
        (row.tenant_id, row.customer_id): row.last_invited_at
        for row in rows
        if (row.tenant_id, row.customer_id) in wanted
    }


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


_TOUCH_CUSTOMERS = text(
    "INSERT INTO trigger.customers (tenant_id, customer_id, last_invited_at, last_event_at) "
    "SELECT * FROM unnest(CAST(:tenants AS uuid[]), CAST(:customers AS text[]), "
    "CAST(:invited AS timestamptz[]), CAST(:seen AS timestamptz[])) "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET last_event_at = excluded.last_event_at, "
    "last_invited_at = coalesce(excluded.last_invited_at, customers.last_invited_at)"
)


async def touch_customers(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert customers; ``last_invited_at`` only moves when the row says it was invited.

    Arrays through unnest(): one statement and four parameters, whatever the batch size.
    """
    if not rows:
        return
    await session.execute(
        _TOUCH_CUSTOMERS,
        {
            "tenants": [row["tenant_id"] for row in rows],
            "customers": [row["customer_id"] for row in rows],
            "invited": [row["last_invited_at"] for row in rows],
            "seen": [row["last_event_at"] for row in rows],
        },
    )


DECISION_COLUMNS = (
    "tenant_id",
    "event_id",
    "event_type",
    "customer_id",
    "touchpoint",
    "outcome",
    "reason",
    "invitation_id",
    "rest_until",
    "rest_period_days",
    "decided_at",
)


async def record_decisions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append decisions with COPY. Each event id was claimed once in this transaction, so a
    decision can never conflict with an earlier one."""
    if rows:
        await copy_rows(
            session,
            cast(Table, Decision.__table__),
            DECISION_COLUMNS,
            [tuple(row[c] for c in DECISION_COLUMNS) for row in rows],
        )


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
