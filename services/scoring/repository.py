"""Every query scoring makes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.domain.nps import Tally
from services.scoring.models import TouchpointTally


@dataclass(frozen=True, slots=True)
class TouchpointCounts:
    tenant_id: uuid.UUID
    touchpoint: str
    tally: Tally


async def add_to_tallies(
    session: AsyncSession, increments: Sequence[TouchpointCounts], at: datetime
) -> list[TouchpointCounts]:
    """Add a batch's counts to the running ones in one statement; return the new totals.

    Incrementing in SQL (rather than read, add, write) keeps concurrent consumers from losing
    each other's answers; sorting the rows makes them lock in the same order, so they cannot
    deadlock either.
    """
    if not increments:
        return []
    rows = [
        {
            "tenant_id": item.tenant_id,
            "touchpoint": item.touchpoint,
            "promoters": item.tally.promoters,
            "passives": item.tally.passives,
            "detractors": item.tally.detractors,
            "updated_at": at,
        }
        for item in sorted(increments, key=lambda item: (item.tenant_id, item.touchpoint))
    ]
    insert = pg_insert(TouchpointTally).values(rows)
    excluded = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[TouchpointTally.tenant_id, TouchpointTally.touchpoint],
        set_={
            "promoters": TouchpointTally.promoters + excluded.promoters,
            "passives": TouchpointTally.passives + excluded.passives,
            "detractors": TouchpointTally.detractors + excluded.detractors,
            "updated_at": excluded.updated_at,
        },
    ).returning(
        TouchpointTally.tenant_id,
        TouchpointTally.touchpoint,
        TouchpointTally.promoters,
        TouchpointTally.passives,
        TouchpointTally.detractors,
    )
    return [
        TouchpointCounts(row.tenant_id, row.touchpoint, Tally(row.promoters, row.passives, row.detractors))
        for row in await session.execute(statement)
    ]


async def tallies_of_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, touchpoint: str | None = None
) -> list[TouchpointCounts]:
    query = select(
        TouchpointTally.touchpoint,
        TouchpointTally.promoters,
        TouchpointTally.passives,
        TouchpointTally.detractors,
    ).where(TouchpointTally.tenant_id == tenant_id)
    if touchpoint is not None:
        query = query.where(TouchpointTally.touchpoint == touchpoint)
    rows = await session.execute(query.order_by(TouchpointTally.touchpoint))
    return [
        TouchpointCounts(tenant_id, row.touchpoint, Tally(row.promoters, row.passives, row.detractors))
        for row in rows
    ]
