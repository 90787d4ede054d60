"""Every query the alerting service makes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, Integer, Table, Text, column, func, select, update, values
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerting.models import COMMON, Answer, FollowupCase, Notification


@dataclass(frozen=True)
class TenantInfo:
    known: bool
    owner_email: str | None


async def tenant_info(session: AsyncSession, tenant_id: uuid.UUID) -> TenantInfo:
    table = COMMON.tenants
    row = (await session.execute(select(table.c.owner_email).where(table.c.id == tenant_id))).first()
    return TenantInfo(known=row is not None, owner_email=row.owner_email if row is not None else None)


async def lock_answer(session: AsyncSession, response_id: uuid.UUID) -> Answer | None:
    """The held version of an answer, locked until the transaction ends."""
    return await session.scalar(select(Answer).where(Answer.response_id == response_id).with_for_update())


async def insert_answer(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Hold a first version of an answer; false when one is held already."""
    created = await session.scalar(
        pg_insert(Answer)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Answer.response_id])
        .returning(Answer.response_id)
    )
    return created is not None


async def case_of_response(
    session: AsyncSession, tenant_id: uuid.UUID, response_id: uuid.UUID
) -> FollowupCase | None:
    """The answer's case, locked: a request may be changing it at the same moment."""
    return await session.scalar(
        select(FollowupCase)
        .where(FollowupCase.response_id == response_id, FollowupCase.tenant_id == tenant_id)
        .with_for_update()
    )


async def insert_case(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a case unless its answer has one already; true when this call created it."""
    created = await session.scalar(
        pg_insert(FollowupCase)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[FollowupCase.response_id])
        .returning(FollowupCase.id)
    )
    return created is not None


async def queue_notifications(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(
            pg_insert(Notification)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=[Notification.case_id, Notification.kind])
        )


async def rewrite_pending(
    session: AsyncSession, case_id: uuid.UUID, kind: str, *, subject: str, body: str
) -> bool:
    """Rewrite a notification not sent yet (the answer changed meanwhile); false if it went out."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.case_id == case_id,
            Notification.kind == kind,
            Notification.sent_at.is_(None),
            Notification.failed_at.is_(None),
        )
        .values(subject=subject, body=body)
        .returning(Notification.id)
    )
    return result.first() is not None


async def withdraw_pending(session: AsyncSession, case_id: uuid.UUID, kind: str, reason: str) -> bool:
    """Never send a notification that no longer holds (the case closed before it went out)."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.case_id == case_id,
            Notification.kind == kind,
            Notification.sent_at.is_(None),
            Notification.failed_at.is_(None),
        )
        .values(failed_at=func.now(), last_error=reason)
        .returning(Notification.id)
    )
    return result.first() is not None


async def breach_candidates(
    session: AsyncSession, now: datetime, *, statuses: Iterable[str], limit: int
) -> Sequence[FollowupCase]:
    """Up to ``limit`` cases that may have breached by ``now``, oldest due first, locked: those in
    a status that can breach, past their due time and not stamped yet. Whether each did is the
    domain's to say (``is_breached``); this only narrows the search to what the index holds.

    SKIP LOCKED lets replicas share the work and leaves a case being changed by a request for the
    next round, when its new status decides whether it breached at all.
    """
    result = await session.scalars(
        select(FollowupCase)
        .where(
            FollowupCase.status.in_(list(statuses)),
            FollowupCase.due_at < now,
            FollowupCase.breached_at.is_(None),
        )
        .order_by(FollowupCase.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return result.all()


async def list_cases(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    status: str | None,
    breached: bool | None,
    limit: int,
) -> Sequence[FollowupCase]:
    query = select(FollowupCase).where(FollowupCase.tenant_id == tenant_id)
    if status is not None:
        query = query.where(FollowupCase.status == status)
    if breached is not None:
        query = query.where(
            FollowupCase.breached_at.is_not(None) if breached else FollowupCase.breached_at.is_(None)
        )
    result = await session.scalars(
        query.order_by(FollowupCase.opened_at.desc(), FollowupCase.id.desc()).limit(limit)
    )
    return result.all()


async def get_case(
    session: AsyncSession, tenant_id: uuid.UUID, case_id: uuid.UUID, *, for_update: bool = False
) -> FollowupCase | None:
    query = select(FollowupCase).where(FollowupCase.id == case_id, FollowupCase.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def count_open_cases(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(FollowupCase).where(FollowupCase.status == "open")
    )
    return int(count or 0)


async def claim_notifications(session: AsyncSession, limit: int, lease: timedelta) -> Sequence[Notification]:
    """Claim a batch of due notifications for ``lease``: each spends an attempt and is not due again
    until the lease is over, so the claim can be committed before the emails are sent. A notifier
    that dies before it records the outcome leaves them to be sent again when the lease runs out.

    Due by the database's clock, the one that stamped them when they were queued. ``SKIP LOCKED``
    lets several notifiers claim side by side without waiting on each other."""
    due = (
        select(Notification.id)
        .where(
            Notification.sent_at.is_(None),
            Notification.failed_at.is_(None),
            Notification.next_attempt_at <= func.now(),
        )
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.scalars(
        update(Notification)
        .where(Notification.id.in_(due.scalar_subquery()))
        .values(attempts=Notification.attempts + 1, next_attempt_at=func.now() + lease)
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.all(), key=lambda notification: notification.id)


_NOTIFICATIONS = cast(Table, Notification.__table__)


async def record_sent(session: AsyncSession, sent: Sequence[tuple[int, datetime]]) -> None:
    """(id, sent at) of the emails the server accepted.

    No fence on who holds the claim: the server accepted the message, so it was sent, whoever
    claimed it since, and even if it was withdrawn while it was on its way."""
    if not sent:
        return
    batch = values(column("id", BigInteger), column("sent_at", DateTime(timezone=True)), name="sent").data(
        list(sent)
    )
    await session.execute(
        update(_NOTIFICATIONS)
        .where(_NOTIFICATIONS.c.id == batch.c.id, _NOTIFICATIONS.c.sent_at.is_(None))
        .values(sent_at=batch.c.sent_at, failed_at=None, last_error=None)
    )


async def record_unsent(
    session: AsyncSession, unsent: Sequence[tuple[int, int, datetime | None, datetime | None, str]]
) -> None:
    """(id, attempts of our claim, next attempt at, failed at, error) of the emails the server did
    not take: each either waits for its next attempt or has failed for good.

    Only while our claim stands: a notification claimed again since (its attempts moved on), sent,
    or withdrawn keeps the newer state."""
    if not unsent:
        return
    batch = values(
        column("id", BigInteger),
        column("attempts", Integer),
        column("next_attempt_at", DateTime(timezone=True)),
        column("failed_at", DateTime(timezone=True)),
        column("error", Text),
        name="unsent",
    ).data(list(unsent))
    await session.execute(
        update(_NOTIFICATIONS)
        .where(
            _NOTIFICATIONS.c.id == batch.c.id,
            _NOTIFICATIONS.c.attempts == batch.c.attempts,
            _NOTIFICATIONS.c.sent_at.is_(None),
            _NOTIFICATIONS.c.failed_at.is_(None),
        )
        .values(
            # A NULL in VALUES is text to Postgres; say what it is.
            next_attempt_at=func.coalesce(
                sql_cast(batch.c.next_attempt_at, DateTime(timezone=True)), _NOTIFICATIONS.c.next_attempt_at
            ),
            failed_at=sql_cast(batch.c.failed_at, DateTime(timezone=True)),
            last_error=batch.c.error,
        )
    )


async def oldest_unbreached_due(
    session: AsyncSession, now: datetime, *, statuses: Iterable[str]
) -> datetime | None:
    """The due time of the longest-overdue case the SLA check has not stamped yet."""
    due: datetime | None = await session.scalar(
        select(func.min(FollowupCase.due_at)).where(
            FollowupCase.status.in_(list(statuses)),
            FollowupCase.due_at < now,
            FollowupCase.breached_at.is_(None),
        )
    )
    return due


async def oldest_notification_due(session: AsyncSession) -> datetime | None:
    """When the longest-waiting notification that is due became due, by the database's clock."""
    due: datetime | None = await session.scalar(
        select(func.min(Notification.next_attempt_at)).where(
            Notification.sent_at.is_(None),
            Notification.failed_at.is_(None),
            Notification.next_attempt_at <= func.now(),
        )
    )
    return due
