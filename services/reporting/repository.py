"""Every query reporting makes. Writes take a whole batch: one statement per table per batch."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, case, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.cases import PROGRESS, CaseFacts
from services.reporting.models import FollowupCase, InvitationSent, Response

CaseKey = tuple[uuid.UUID, uuid.UUID]


async def record_invitations(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(pg_insert(InvitationSent).values(list(rows)).on_conflict_do_nothing())


async def record_responses(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(pg_insert(Response).values(list(rows)).on_conflict_do_nothing())


def _progress(status: SQLColumnExpression[str]) -> ColumnElement[int]:
    return case(*((status == name, rank) for name, rank in PROGRESS.items()), else_=-1)


async def merge_cases(session: AsyncSession, cases: Mapping[CaseKey, CaseFacts]) -> None:
    """Upsert cases by the rule of :func:`services.reporting.domain.cases.merge`, in SQL, so that
    facts from earlier batches and from this one combine the same way whatever their order.

    The caller merges the batch first: one row per case, as ON CONFLICT DO UPDATE requires.
    """
    if not cases:
        return
    rows = [
        {
            "tenant_id": tenant_id,
            "case_id": case_id,
            "touchpoint": facts.touchpoint,
            "status": facts.status,
            "breached": facts.breached,
            "opened_at": facts.opened_at,
            "due_at": facts.due_at,
            "updated_at": facts.updated_at,
        }
        for (tenant_id, case_id), facts in sorted(cases.items())
    ]
    insert = pg_insert(FollowupCase).values(rows)
    arriving = insert.excluded
    newer = tuple_(arriving.updated_at, _progress(arriving.status), arriving.breached) > tuple_(
        FollowupCase.updated_at, _progress(FollowupCase.status), FollowupCase.breached
    )
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[FollowupCase.tenant_id, FollowupCase.case_id],
            set_={
                "status": case((newer, arriving.status), else_=FollowupCase.status),
                "breached": case((newer, arriving.breached), else_=FollowupCase.breached),
                "updated_at": case((newer, arriving.updated_at), else_=FollowupCase.updated_at),
                "touchpoint": func.coalesce(FollowupCase.touchpoint, arriving.touchpoint),
                "opened_at": func.coalesce(FollowupCase.opened_at, arriving.opened_at),
                "due_at": func.coalesce(FollowupCase.due_at, arriving.due_at),
            },
        )
    )


@dataclass(frozen=True)
class ReportFilter:
    tenant_id: uuid.UUID
    touchpoint: str | None = None
    since: datetime | None = None


async def answers_by_score(session: AsyncSession, where: ReportFilter) -> list[tuple[str, int, int]]:
    """(touchpoint, score, number of answers): at most 11 rows per touchpoint."""
    query = select(Response.touchpoint, Response.score, func.count()).where(
        Response.tenant_id == where.tenant_id
    )
    if where.touchpoint is not None:
        query = query.where(Response.touchpoint == where.touchpoint)
    if where.since is not None:
        query = query.where(Response.responded_at >= where.since)
    rows = await session.execute(query.group_by(Response.touchpoint, Response.score))
    return [(row[0], row[1], row[2]) for row in rows]


async def invitations_by_touchpoint(session: AsyncSession, where: ReportFilter) -> dict[str, int]:
    query = select(InvitationSent.touchpoint, func.count()).where(InvitationSent.tenant_id == where.tenant_id)
    if where.touchpoint is not None:
        query = query.where(InvitationSent.touchpoint == where.touchpoint)
    if where.since is not None:
        query = query.where(InvitationSent.sent_at >= where.since)
    rows = await session.execute(query.group_by(InvitationSent.touchpoint))
    return {row[0]: row[1] for row in rows}


async def cases_by_state(
    session: AsyncSession, where: ReportFilter
) -> list[tuple[str | None, str, bool, int]]:
    """(touchpoint or None while unknown, status, breached, number of cases)."""
    query = select(FollowupCase.touchpoint, FollowupCase.status, FollowupCase.breached, func.count()).where(
        FollowupCase.tenant_id == where.tenant_id
    )
    if where.touchpoint is not None:
        query = query.where(FollowupCase.touchpoint == where.touchpoint)
    if where.since is not None:
        query = query.where(func.coalesce(FollowupCase.opened_at, FollowupCase.updated_at) >= where.since)
    rows = await session.execute(
        query.group_by(FollowupCase.touchpoint, FollowupCase.status, FollowupCase.breached)
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]
