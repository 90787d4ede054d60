"""Every query the survey makes. The sender's queries take a whole batch: one statement per batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Table,
    Uuid,
    and_,
    case,
    column,
    or_,
    select,
    tuple_,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.survey.domain.delivery import InvitationStatus
from services.survey.models import COMMON, Invitation, Response

_INVITATIONS = cast(Table, Invitation.__table__)


async def insert_invitations(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """A redelivered or repeated request for the same invitation changes nothing."""
    if rows:
        await session.execute(pg_insert(Invitation).values(list(rows)).on_conflict_do_nothing())


async def claim_due(
    session: AsyncSession, *, now: datetime, stale_before: datetime, limit: int
) -> Sequence[Any]:
    """Mark up to ``limit`` due invitations ``sending`` and return them.

    Due: scheduled and its time has come, or claimed earlier by a sender that never recorded an
    outcome (it died, or lost its database connection) before ``stale_before``. ``SKIP LOCKED`` lets
    several replicas claim side by side without waiting on each other.
    """
    due = (
        select(Invitation.id)
        .where(
            or_(
                and_(Invitation.status == InvitationStatus.SCHEDULED.value, Invitation.send_at <= now),
                and_(
                    Invitation.status == InvitationStatus.SENDING.value,
                    Invitation.sending_started_at < stale_before,
                ),
            )
        )
        .order_by(Invitation.send_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Invitation)
        .where(Invitation.id.in_(due.scalar_subquery()))
        .values(
            status=InvitationStatus.SENDING.value, sending_started_at=now, attempts=Invitation.attempts + 1
        )
        .returning(
            Invitation.id,
            Invitation.tenant_id,
            Invitation.customer_id,
            Invitation.email,
            Invitation.name,
            Invitation.locale,
            Invitation.touchpoint,
            Invitation.attempts,
            Invitation.send_at,
            Invitation.expires_at,
        )
    )
    return result.all()


async def tenant_names(session: AsyncSession, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not tenant_ids:
        return {}
    table = COMMON.tenants
    rows = await session.execute(select(table.c.id, table.c.name).where(table.c.id.in_(set(tenant_ids))))
    return {row.id: row.name for row in rows}


async def mark_sent(session: AsyncSession, delivered: Sequence[tuple[uuid.UUID, datetime]]) -> Sequence[Any]:
    """Record accepted deliveries; return the invitations not already recorded as sent.

    No fence on who holds the claim: the server accepted the message, so it was sent, whoever
    claimed it since. An invitation answered meanwhile keeps ``responded``.
    """
    if not delivered:
        return []
    batch = values(column("id", Uuid), column("sent_at", DateTime(timezone=True)), name="delivered").data(
        list(delivered)
    )
    result = await session.execute(
        update(_INVITATIONS)
        .where(_INVITATIONS.c.id == batch.c.id, _INVITATIONS.c.sent_at.is_(None))
        .values(
            sent_at=batch.c.sent_at,
            status=case(
                (_INVITATIONS.c.status == InvitationStatus.RESPONDED.value, _INVITATIONS.c.status),
                else_=InvitationStatus.SENT.value,
            ),
            sending_started_at=None,
            last_error=None,
        )
        .returning(
            _INVITATIONS.c.id,
            _INVITATIONS.c.tenant_id,
            _INVITATIONS.c.customer_id,
            _INVITATIONS.c.touchpoint,
            _INVITATIONS.c.sent_at,
        )
    )
    return result.all()


async def reschedule(session: AsyncSession, retries: Sequence[tuple[uuid.UUID, int, datetime, str]]) -> None:
    """(id, attempts of our claim, next send time, error). Fenced by the claim, see :func:`fail`."""
    if not retries:
        return
    batch = values(
        column("id", Uuid),
        column("attempts", Integer),
        column("send_at", DateTime(timezone=True)),
        column("error", String),
        name="retries",
    ).data(list(retries))
    await session.execute(
        update(_INVITATIONS)
        .where(
            _INVITATIONS.c.id == batch.c.id,
            _INVITATIONS.c.status == InvitationStatus.SENDING.value,
            _INVITATIONS.c.attempts == batch.c.attempts,
        )
        .values(
            status=InvitationStatus.SCHEDULED.value,
            send_at=batch.c.send_at,
            sending_started_at=None,
            last_error=batch.c.error,
        )
    )


async def fail(session: AsyncSession, failures: Sequence[tuple[uuid.UUID, int, str]]) -> None:
    """(id, attempts of our claim, error). Only while our claim stands: if the invitation was
    reclaimed since, or answered, the newer state wins over our failure."""
    if not failures:
        return
    batch = values(
        column("id", Uuid), column("attempts", Integer), column("error", String), name="failures"
    ).data(list(failures))
    await session.execute(
        update(_INVITATIONS)
        .where(
            _INVITATIONS.c.id == batch.c.id,
            _INVITATIONS.c.status == InvitationStatus.SENDING.value,
            _INVITATIONS.c.attempts == batch.c.attempts,
        )
        .values(status=InvitationStatus.FAILED.value, sending_started_at=None, last_error=batch.c.error)
    )


async def invitation_by_token_hash(session: AsyncSession, token_hash: str) -> Any:
    """The invitation a link points at, with the tenant's name (``None`` if not known yet)."""
    tenants = COMMON.tenants
    return (
        await session.execute(
            select(
                Invitation.id,
                Invitation.tenant_id,
                Invitation.customer_id,
                Invitation.email,
                Invitation.name,
                Invitation.touchpoint,
                Invitation.token_hash,
                Invitation.expires_at,
                Invitation.responded_at,
                tenants.c.name.label("tenant_name"),
            )
            .outerjoin(tenants, tenants.c.id == Invitation.tenant_id)
            .where(Invitation.token_hash == token_hash)
        )
    ).first()


async def insert_response(session: AsyncSession, row: dict[str, Any]) -> bool:
    """False when the invitation has an answer already (the unique index decides, race-free)."""
    inserted = await session.scalar(
        pg_insert(Response).values(**row).on_conflict_do_nothing().returning(Response.id)
    )
    return inserted is not None


async def mark_responded(session: AsyncSession, invitation_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id)
        .values(status=InvitationStatus.RESPONDED.value, responded_at=at)
    )


async def cancel_scheduled(session: AsyncSession, invitations: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> int:
    """Cancel invitations that are still only scheduled; one being sent or sent stays as it is."""
    if not invitations:
        return 0
    result = await session.execute(
        update(Invitation)
        .where(
            tuple_(Invitation.tenant_id, Invitation.id).in_(list(invitations)),
            Invitation.status == InvitationStatus.SCHEDULED.value,
        )
        .values(status=InvitationStatus.CANCELLED.value)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def invitations_for_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: str, limit: int
) -> Sequence[Invitation]:
    result = await session.scalars(
        select(Invitation)
        .where(Invitation.tenant_id == tenant_id, Invitation.customer_id == customer_id)
        .order_by(Invitation.created_at.desc(), Invitation.id)
        .limit(limit)
    )
    return result.all()
