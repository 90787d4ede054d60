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
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
    values,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.survey.domain.delivery import InvitationStatus
from services.survey.models import COMMON, Invitation, Response, Suppression, TenantSettings

_INVITATIONS = cast(Table, Invitation.__table__)
#: What a sender needs of an invitation it claimed, to email it (or remind of it).
_CLAIMED = (
    Invitation.id,
    Invitation.tenant_id,
    Invitation.customer_id,
    Invitation.email,
    Invitation.name,
    Invitation.locale,
    Invitation.language,
    Invitation.touchpoint,
    Invitation.attempts,
    Invitation.send_at,
    Invitation.expires_at,
)


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
        .returning(*_CLAIMED)
    )
    return result.all()


async def tenant_names(session: AsyncSession, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not tenant_ids:
        return {}
    table = COMMON.tenants
    # Emails and pages name the company as its customers know it; the slug only if it has no other.
    named = func.coalesce(table.c.display_name, table.c.name).label("name")
    rows = await session.execute(select(table.c.id, named).where(table.c.id.in_(set(tenant_ids))))
    return {row.id: row.name for row in rows}


async def mark_sent(
    session: AsyncSession, delivered: Sequence[tuple[uuid.UUID, datetime, str, datetime | None]]
) -> Sequence[Any]:
    """Record accepted deliveries (id, sent at, language, reminder due at); return the invitations
    not already recorded as sent.

    No fence on who holds the claim: the server accepted the message, so it was sent, whoever
    claimed it since. An invitation answered meanwhile keeps ``responded``.
    """
    if not delivered:
        return []
    batch = values(
        column("id", Uuid),
        column("sent_at", DateTime(timezone=True)),
        column("language", String),
        column("reminder_due_at", DateTime(timezone=True)),
        name="delivered",
    ).data(list(delivered))
    result = await session.execute(
        update(_INVITATIONS)
        .where(_INVITATIONS.c.id == batch.c.id, _INVITATIONS.c.sent_at.is_(None))
        .values(
            sent_at=batch.c.sent_at,
            language=batch.c.language,
            # A NULL in VALUES is text to Postgres; say what it is.
            reminder_due_at=sql_cast(batch.c.reminder_due_at, DateTime(timezone=True)),
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


def _claimed_batch(name: str, rows: Sequence[tuple[Any, ...]], *extra: tuple[str, Any]) -> Any:
    """A VALUES list of (id, attempts of our claim, *extra) to update invitations by, in one
    statement for the whole batch."""
    columns = [column("id", Uuid), column("attempts", Integer), *(column(n, t) for n, t in extra)]
    return values(*columns, name=name).data(list(rows))


def _while_claimed(batch: Any) -> Any:
    """Only while our claim stands: if the invitation was reclaimed since (its attempts moved on),
    or answered, the newer state wins over what this sender would record."""
    return update(_INVITATIONS).where(
        _INVITATIONS.c.id == batch.c.id,
        _INVITATIONS.c.status == InvitationStatus.SENDING.value,
        _INVITATIONS.c.attempts == batch.c.attempts,
    )


async def reschedule(session: AsyncSession, retries: Sequence[tuple[uuid.UUID, int, datetime, str]]) -> None:
    """(id, attempts of our claim, next send time, error): tried, to be tried again later."""
    if not retries:
        return
    batch = _claimed_batch("retries", retries, ("send_at", DateTime(timezone=True)), ("error", String))
    await session.execute(
        _while_claimed(batch).values(
            status=InvitationStatus.SCHEDULED.value,
            send_at=batch.c.send_at,
            sending_started_at=None,
            last_error=batch.c.error,
        )
    )


async def fail(session: AsyncSession, failures: Sequence[tuple[uuid.UUID, int, str, str]]) -> Sequence[Any]:
    """(id, attempts of our claim, error, reason code); returns the invitations marked failed
    just now."""
    if not failures:
        return []
    batch = _claimed_batch("failures", failures, ("error", String), ("reason", String))
    result = await session.execute(
        _while_claimed(batch)
        .values(
            status=InvitationStatus.FAILED.value,
            sending_started_at=None,
            last_error=batch.c.error,
            failure_reason=batch.c.reason,
        )
        .returning(_INVITATIONS.c.id)
    )
    failed: Sequence[Any] = result.all()
    return failed


async def put_back(session: AsyncSession, waits: Sequence[tuple[uuid.UUID, int, datetime]]) -> None:
    """(id, attempts of our claim, slot): back to ``scheduled`` for the slot the tenant's sending
    rate gave it, with the claim's attempt given back: waiting is not trying."""
    if not waits:
        return
    batch = _claimed_batch("waits", waits, ("send_at", DateTime(timezone=True)))
    await session.execute(
        _while_claimed(batch).values(
            status=InvitationStatus.SCHEDULED.value,
            send_at=batch.c.send_at,
            sending_started_at=None,
            attempts=_INVITATIONS.c.attempts - 1,
        )
    )


async def invitation_by_token_hash(session: AsyncSession, token_hash: str) -> Any:
    """The invitation a link points at, with the tenant's name (``None`` if not known yet) and its
    answer so far (``score`` is ``None`` until there is one)."""
    tenants = COMMON.tenants
    return (
        await session.execute(
            select(
                Invitation.id,
                Invitation.tenant_id,
                Invitation.customer_id,
                Invitation.email,
                Invitation.name,
                Invitation.locale,
                Invitation.language,
                Invitation.touchpoint,
                Invitation.token_hash,
                Invitation.expires_at,
                Invitation.sent_at,
                Invitation.reminded_at,
                Invitation.responded_at,
                Invitation.unsubscribed_at,
                func.coalesce(tenants.c.display_name, tenants.c.name).label("tenant_name"),
                Response.score,
                Response.comment,
                Response.recommended,
                Response.csat,
                Response.effort,
                Response.revision,
            )
            .outerjoin(tenants, tenants.c.id == Invitation.tenant_id)
            .outerjoin(Response, Response.invitation_id == Invitation.id)
            .where(Invitation.token_hash == token_hash)
        )
    ).first()


async def insert_response(session: AsyncSession, row: dict[str, Any]) -> bool:
    """False when the invitation has an answer already (the unique index decides, race-free)."""
    inserted = await session.scalar(
        pg_insert(Response).values(**row).on_conflict_do_nothing().returning(Response.id)
    )
    return inserted is not None


async def update_response(
    session: AsyncSession, invitation_id: uuid.UUID, *, revision: int, values_: dict[str, Any]
) -> Any:
    """Change an answer if it is still at ``revision`` (a concurrent change wins otherwise); the new
    revision is one more. Returns the whole answer as it now stands, or ``None``."""
    result = await session.execute(
        update(Response)
        .where(Response.invitation_id == invitation_id, Response.revision == revision)
        .values(**values_, revision=Response.revision + 1)
        .returning(
            Response.id,
            Response.score,
            Response.comment,
            Response.recommended,
            Response.csat,
            Response.effort,
            Response.revision,
            Response.responded_at,
            Response.updated_at,
        )
    )
    return result.first()


async def mark_responded(session: AsyncSession, invitation_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id)
        .values(status=InvitationStatus.RESPONDED.value, responded_at=at)
    )


async def stamp_once(session: AsyncSession, invitation_id: uuid.UUID, stamp: str, at: datetime) -> bool:
    """Set a funnel stamp (``opened_at``, ``clicked_at``, ``unsubscribed_at``) the first time only;
    true if this was the first time."""
    target = _INVITATIONS.c[stamp]
    result = await session.execute(
        update(_INVITATIONS)
        .where(_INVITATIONS.c.id == invitation_id, target.is_(None))
        .values({stamp: at})
        .returning(_INVITATIONS.c.id)
    )
    return result.first() is not None


# --- Suppressions -------------------------------------------------------------------------------


async def suppress(
    session: AsyncSession, rows: Sequence[tuple[uuid.UUID, str, str, datetime]]
) -> set[tuple[uuid.UUID, str]]:
    """(tenant, address, reason, at): the first reason recorded stays. Returns the (tenant,
    lower-cased address) pairs suppressed just now, not before."""
    if not rows:
        return set()
    result = await session.execute(
        pg_insert(Suppression)
        .values(
            [
                {"tenant_id": t, "email_lower": e.lower(), "reason": r, "suppressed_at": at}
                for t, e, r, at in rows
            ]
        )
        .on_conflict_do_nothing()
        .returning(Suppression.tenant_id, Suppression.email_lower)
    )
    return {(row.tenant_id, row.email_lower) for row in result}


async def suppressed(
    session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, str]]
) -> set[tuple[uuid.UUID, str]]:
    if not pairs:
        return set()
    wanted = {(tenant, email.lower()) for tenant, email in pairs}
    rows = await session.execute(
        select(Suppression.tenant_id, Suppression.email_lower).where(
            tuple_(Suppression.tenant_id, Suppression.email_lower).in_(list(wanted))
        )
    )
    return {(row.tenant_id, row.email_lower) for row in rows}


async def cancel_scheduled_to(session: AsyncSession, addresses: Sequence[tuple[uuid.UUID, str]]) -> int:
    """Cancel the not-yet-sent invitations to (tenant, address) pairs that must not be emailed."""
    if not addresses:
        return 0
    wanted = sorted({(tenant, email.lower()) for tenant, email in addresses})
    result = await session.execute(
        update(Invitation)
        .where(
            tuple_(Invitation.tenant_id, func.lower(Invitation.email)).in_(wanted),
            Invitation.status == InvitationStatus.SCHEDULED.value,
        )
        .values(status=InvitationStatus.CANCELLED.value)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def invitations_for_bounces(
    session: AsyncSession, ids: Sequence[uuid.UUID], emails: Sequence[str], sent_since: datetime
) -> Sequence[Any]:
    """The invitations bounce reports are about: by the Message-ID's invitation id, else the ones
    recently sent to the reported address (in every tenant: the address is dead for all)."""
    conditions: list[ColumnElement[bool]] = []
    if ids:
        conditions.append(Invitation.id.in_(list(set(ids))))
    if emails:
        conditions.append(
            and_(
                func.lower(Invitation.email).in_(sorted({e.lower() for e in emails})),
                Invitation.sent_at >= sent_since,
            )
        )
    if not conditions:
        return []
    rows = await session.execute(
        select(
            Invitation.id,
            Invitation.tenant_id,
            Invitation.customer_id,
            Invitation.touchpoint,
            Invitation.email,
        ).where(or_(*conditions))
    )
    return rows.all()


# --- Settings -----------------------------------------------------------------------------------


async def settings_for(
    session: AsyncSession, tenant_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], dict[str, Any]]:
    """(tenant, touchpoint or "") -> stored configuration."""
    if not tenant_ids:
        return {}
    rows = await session.execute(
        select(TenantSettings.tenant_id, TenantSettings.touchpoint, TenantSettings.config).where(
            TenantSettings.tenant_id.in_(set(tenant_ids))
        )
    )
    return {(row.tenant_id, row.touchpoint): dict(row.config) for row in rows}


async def put_settings(
    session: AsyncSession, tenant_id: uuid.UUID, touchpoint: str, config: dict[str, Any], at: datetime
) -> None:
    statement = pg_insert(TenantSettings).values(
        tenant_id=tenant_id, touchpoint=touchpoint, config=config, updated_at=at
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[TenantSettings.tenant_id, TenantSettings.touchpoint],
            set_={"config": statement.excluded.config, "updated_at": statement.excluded.updated_at},
        )
    )


# --- Lifecycle ----------------------------------------------------------------------------------


async def claim_reminders(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Any]:
    """Mark up to ``limit`` reminders as sent before sending them: a crash loses a reminder rather
    than sending two. Never after an answer, an unsubscribe, a bounce or expiry."""
    due = (
        select(Invitation.id)
        .where(
            Invitation.reminder_due_at <= now,
            Invitation.reminded_at.is_(None),
            Invitation.responded_at.is_(None),
            Invitation.unsubscribed_at.is_(None),
            Invitation.bounced_at.is_(None),
            Invitation.withdrawn_at.is_(None),
            Invitation.status == InvitationStatus.SENT.value,
            Invitation.expires_at > now,
        )
        .order_by(Invitation.reminder_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Invitation)
        .where(Invitation.id.in_(due.scalar_subquery()))
        .values(reminded_at=now)
        .returning(*_CLAIMED)
    )
    return result.all()


async def record_expired(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Any]:
    """Sent invitations whose link expired unanswered, each reported once."""
    due = (
        select(Invitation.id)
        .where(
            Invitation.status == InvitationStatus.SENT.value,
            Invitation.expiry_recorded_at.is_(None),
            Invitation.expires_at < now,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Invitation)
        .where(Invitation.id.in_(due.scalar_subquery()))
        .values(expiry_recorded_at=now)
        .returning(Invitation.id, Invitation.tenant_id, Invitation.customer_id, Invitation.touchpoint)
    )
    return result.all()


async def mark_bounced(session: AsyncSession, ids: Sequence[uuid.UUID], at: datetime) -> Sequence[Any]:
    """Stamp the bounce once per invitation; return the newly stamped ones."""
    if not ids:
        return []
    result = await session.execute(
        update(Invitation)
        .where(Invitation.id.in_(list(set(ids))), Invitation.bounced_at.is_(None))
        .values(bounced_at=at)
        .returning(Invitation.id)
    )
    return result.all()


async def cancel_scheduled(
    session: AsyncSession, invitations: Sequence[tuple[uuid.UUID, uuid.UUID]], at: datetime
) -> int:
    """Withdraw invitations: one still only scheduled is cancelled; one being sent or sent already
    keeps its state, but its reminder is withdrawn."""
    if not invitations:
        return 0
    wanted = tuple_(Invitation.tenant_id, Invitation.id).in_(list(invitations))
    result = await session.execute(
        update(Invitation)
        .where(wanted, Invitation.status == InvitationStatus.SCHEDULED.value)
        .values(status=InvitationStatus.CANCELLED.value)
    )
    await session.execute(
        update(Invitation)
        .where(
            wanted,
            Invitation.status.in_([InvitationStatus.SENDING.value, InvitationStatus.SENT.value]),
            Invitation.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def lift_suppressions(session: AsyncSession, addresses: Sequence[tuple[uuid.UUID, str]]) -> None:
    """(tenant, address): the customer re-subscribed; the address may be emailed again."""
    if addresses:
        await session.execute(
            delete(Suppression).where(
                tuple_(Suppression.tenant_id, Suppression.email_lower).in_(
                    sorted({(tenant, email.lower()) for tenant, email in addresses})
                )
            )
        )


async def invitations_of_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, *, customer: str | None, status: str | None, limit: int
) -> Sequence[Invitation]:
    query = select(Invitation).where(Invitation.tenant_id == tenant_id)
    if customer is not None:
        query = query.where(Invitation.customer_id == customer)
    if status is not None:
        query = query.where(Invitation.status == status)
    result = await session.scalars(query.order_by(Invitation.created_at.desc(), Invitation.id).limit(limit))
    return result.all()


async def oldest_due_to_send(session: AsyncSession, now: datetime) -> datetime | None:
    """When the longest-waiting invitation that is due to be sent became due (the sender's age)."""
    due: datetime | None = await session.scalar(
        select(func.min(Invitation.send_at)).where(
            Invitation.status == InvitationStatus.SCHEDULED.value, Invitation.send_at <= now
        )
    )
    return due


async def oldest_reminder_due(session: AsyncSession, now: datetime) -> datetime | None:
    """When the longest-waiting reminder that is due became due (the reminder job's age)."""
    due: datetime | None = await session.scalar(
        select(func.min(Invitation.reminder_due_at)).where(
            Invitation.reminder_due_at <= now,
            Invitation.reminded_at.is_(None),
            Invitation.responded_at.is_(None),
            Invitation.unsubscribed_at.is_(None),
            Invitation.bounced_at.is_(None),
            Invitation.withdrawn_at.is_(None),
            Invitation.status == InvitationStatus.SENT.value,
            Invitation.expires_at > now,
        )
    )
    return due
