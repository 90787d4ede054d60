"""Every query the survey makes, as :class:`SurveyRepository`, one method a query, over a unit of
work's session (``uow.repository``). The sender's queries take a whole batch: one statement per
batch. Rows come back as the small named tuples below, one per projection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple, cast

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
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause, ColumnElement
from sqlalchemy.sql.expression import Update, Values

from libs.common.erasure import ERASED_EMAIL
from libs.common.jobs import Due
from libs.common.privacy import SECTION_LIMIT, KeysetSection, PageRequestError, Section, customer_pages
from libs.common.retention import retention_update
from services.survey.domain.answers import FollowUp
from services.survey.domain.delivery import InvitationStatus
from services.survey.domain.suppression import DEV_PRIVACY_HASH_KEY, address_hash, normalised_address
from services.survey.models import (
    COMMON,
    ErasedCustomer,
    Invitation,
    RateSlot,
    Response,
    Suppression,
    TenantSettings,
)

_INVITATIONS = cast(Table, Invitation.__table__)
#: The columns of a :class:`DueInvitation`, in its order.
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
    Invitation.trace_context,
)


@dataclass(frozen=True, slots=True)
class NewInvitation:
    """An invitation to schedule: who, about what, when to send it and until when its link works."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    email: str
    name: str | None
    locale: str | None
    touchpoint: str
    trigger_event_id: str
    token_hash: str
    send_at: datetime
    expires_at: datetime
    created_at: datetime
    #: The request's ``SurveyContext`` as JSON, if it carried one.
    context: dict[str, object] | None = None
    #: The request's trace context (``traceparent`` / ``tracestate``), if it carried one.
    trace_context: dict[str, str] | None = None


class DueInvitation(NamedTuple):
    """What a sender needs of an invitation it claimed, to email it (or remind of it)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    email: str
    name: str | None
    locale: str | None
    language: str | None
    touchpoint: str
    #: Including this claim.
    attempts: int
    send_at: datetime
    expires_at: datetime
    trace_context: dict[str, str] | None


class InvitationRef(NamedTuple):
    """Whose invitation an event is about."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    touchpoint: str


class SentInvitation(NamedTuple):
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    touchpoint: str
    sent_at: datetime
    trace_context: dict[str, str] | None


class BouncedInvitation(NamedTuple):
    """An invitation a bounce report is about, with the address it was sent to."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    touchpoint: str
    email: str


class InvitationLink(NamedTuple):
    """The invitation a survey link points at, with the tenant's name (``None`` if not known yet)
    and its answer so far (``score`` and ``revision`` are ``None`` until there is one)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    email: str
    name: str | None
    locale: str | None
    language: str | None
    touchpoint: str
    token_hash: str
    expires_at: datetime
    sent_at: datetime | None
    reminded_at: datetime | None
    responded_at: datetime | None
    unsubscribed_at: datetime | None
    tenant_name: str | None
    score: int | None
    comment: str | None
    recommended: bool | None
    csat: int | None
    effort: int | None
    revision: int | None
    #: The request's ``SurveyContext`` as JSON, if it carried one.
    context: dict[str, object] | None
    trace_context: dict[str, str] | None


class ResponseVersion(NamedTuple):
    """An answer as it stands after a change."""

    id: uuid.UUID
    score: int
    comment: str | None
    recommended: bool | None
    csat: int | None
    effort: int | None
    revision: int
    responded_at: datetime
    updated_at: datetime


#: The funnel stamps an invitation gets the first time only.
Stamp = Literal["opened_at", "clicked_at", "unsubscribed_at"]

_RESPONSE_VERSION = (
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


def _claimed_batch(
    name: str, rows: Sequence[tuple[object, ...]], *extra: ColumnClause[datetime] | ColumnClause[str]
) -> Values:
    """A VALUES list of (id, attempts of our claim, *extra) to update invitations by, in one
    statement for the whole batch."""
    return values(column("id", Uuid), column("attempts", Integer), *extra, name=name).data(list(rows))


def _while_claimed(batch: Values) -> Update:
    """Only while our claim stands: if the invitation was reclaimed since (its attempts moved on),
    or answered, the newer state wins over what this sender would record."""
    return update(_INVITATIONS).where(
        _INVITATIONS.c.id == batch.c.id,
        _INVITATIONS.c.status == InvitationStatus.SENDING.value,
        _INVITATIONS.c.attempts == batch.c.attempts,
    )


class SurveyRepository:
    def __init__(self, session: AsyncSession, *, privacy_hash_key: str = DEV_PRIVACY_HASH_KEY) -> None:
        self._session = session
        # The suppression list is kept by keyed hash (domain.suppression); main.py passes the key.
        self._privacy_hash_key = privacy_hash_key

    def _address_hash(self, email: str) -> str:
        return address_hash(self._privacy_hash_key, email)

    # --- Privacy: retention ---------------------------------------------------------------------

    async def apply_retention(self, now: datetime, limit: int) -> int:
        """One batch past each tenant's retention: comments removed from answers (the score and
        the follow-up answers stay, and count), invitations whose link has expired anonymised (who
        it went to, their name, the context, the last SMTP reply; the status and funnel stay)."""
        cleared = 0
        for statement in (_RETAIN_COMMENTS, _RETAIN_INVITATIONS):
            result = await self._session.execute(statement, {"now": now, "limit": limit - cleared})
            cleared += int(getattr(result, "rowcount", 0) or 0)
            if cleared >= limit:
                break
        return cleared

    # --- Privacy: a customer's data (export) ----------------------------------------------------

    def customer_sections(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, KeysetSection]:
        """The survey's kinds of row about one customer of one tenant, each read in pages down an
        index: never the link's token hash nor the trace context (no secrets, nobody else's)."""
        mine = and_(Response.tenant_id == tenant_id, Response.customer_id == customer_id)
        by_answer = (Response.responded_at, Response.id)
        return {
            "invitations": KeysetSection(
                select(Invitation.__table__).where(
                    Invitation.tenant_id == tenant_id, Invitation.customer_id == customer_id
                ),
                (Invitation.created_at, Invitation.id),
                omit=("token_hash", "trace_context"),
            ),
            "answers": KeysetSection(
                select(
                    Response.id.label("response_id"),
                    Response.invitation_id,
                    Response.touchpoint,
                    Response.score,
                    Response.responded_at,
                    Response.revision,
                    Response.updated_at,
                ).where(mine),
                by_answer,
            ),
            "comments": KeysetSection(
                select(Response.id.label("response_id"), Response.comment, Response.responded_at).where(
                    mine, Response.comment.is_not(None), Response.comment != ""
                ),
                by_answer,
            ),
            "follow_up_answers": KeysetSection(
                select(
                    Response.id.label("response_id"),
                    Response.recommended,
                    Response.csat,
                    Response.effort,
                    Response.responded_at,
                ).where(
                    mine,
                    or_(
                        Response.recommended.is_not(None),
                        Response.csat.is_not(None),
                        Response.effort.is_not(None),
                    ),
                ),
                by_answer,
            ),
        }

    async def customer_data(
        self,
        tenant_id: uuid.UUID,
        customer_id: str,
        *,
        section: str | None = None,
        after: str | None = None,
        limit: int = SECTION_LIMIT,
    ) -> dict[str, Section]:
        """A page of the survey's sections (:meth:`customer_sections`), and ``suppression``, one row
        whatever the customer holds: the list keeps hashes, so whether this customer's addresses
        are on it is all it can say."""
        if section == "suppression":
            if after is not None:
                raise PageRequestError("after", "the suppression section is one page")
            pages: dict[str, Section] = {}
        else:
            sections = self.customer_sections(tenant_id, customer_id)
            pages = await customer_pages(self._session, sections, section=section, after=after, limit=limit)
            if section is not None:
                return pages
        addresses = (
            await self._session.scalars(
                select(func.lower(Invitation.email))
                .where(Invitation.tenant_id == tenant_id, Invitation.customer_id == customer_id)
                .distinct()
                .limit(SECTION_LIMIT)
            )
        ).all()
        suppressed = await self.suppressed([(tenant_id, address) for address in addresses])
        return {**pages, "suppression": Section([{"unsubscribed": bool(suppressed)}])}

    async def customer_invitations(self, tenant_id: uuid.UUID, customer_id: str) -> list[uuid.UUID]:
        """The customer's invitations, locked (the sender or a page may be updating one)."""
        return list(
            (
                await self._session.execute(
                    select(Invitation.id)
                    .where(Invitation.tenant_id == tenant_id, Invitation.customer_id == customer_id)
                    .order_by(Invitation.id)
                    .with_for_update()
                )
            ).scalars()
        )

    async def erase_invitations(self, dead_tokens: Sequence[tuple[uuid.UUID, str]], now: datetime) -> None:
        """Anonymise invitations: the address becomes the reserved erased one, the name, survey
        context, trace and last error go, the token hash becomes the given one of a token nobody
        holds (the link answers 404 from now on), one not sent yet is cancelled and no reminder
        follows. The suppression
        of the address is not touched: an unsubscribe outlives an erasure."""
        if not dead_tokens:
            return
        tokens = values(column("id", Uuid), column("dead", String), name="dead_tokens").data(
            list(dead_tokens)
        )
        await self._session.execute(
            update(Invitation)
            .where(Invitation.id == tokens.c.id)
            .values(
                email=ERASED_EMAIL,
                name=None,
                context=None,
                trace_context=None,
                last_error=None,
                token_hash=tokens.c.dead,
                status=case(
                    (Invitation.status == InvitationStatus.SCHEDULED.value, InvitationStatus.CANCELLED.value),
                    else_=Invitation.status,
                ),
                withdrawn_at=func.coalesce(Invitation.withdrawn_at, now),
                reminder_due_at=None,
            )
        )

    async def erase_answers(self, tenant_id: uuid.UUID, customer_id: str) -> int:
        """The customer's answers keep their scores (the NPS counts them) and lose their comments."""
        result = await self._session.execute(
            update(Response)
            .where(Response.tenant_id == tenant_id, Response.customer_id == customer_id)
            .values(comment=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def record_erasure(
        self, erasure_id: uuid.UUID, tenant_id: uuid.UUID, customer_key: str, requested_at: datetime
    ) -> None:
        await self._session.execute(
            pg_insert(ErasedCustomer)
            .values(
                erasure_id=erasure_id,
                tenant_id=tenant_id,
                customer_key=customer_key,
                requested_at=requested_at,
            )
            .on_conflict_do_nothing()
        )

    async def erased_since(self, tenant_id: uuid.UUID, customer_keys: Sequence[str]) -> dict[str, datetime]:
        """The latest erasure of each of these customers (keyed hashes) that has one."""
        if not customer_keys:
            return {}
        rows = await self._session.execute(
            select(ErasedCustomer.customer_key, func.max(ErasedCustomer.requested_at))
            .where(
                ErasedCustomer.tenant_id == tenant_id,
                ErasedCustomer.customer_key.in_(sorted(set(customer_keys))),
            )
            .group_by(ErasedCustomer.customer_key)
        )
        return {key: at for key, at in rows.tuples()}

    async def insert_invitations(self, invitations: Sequence[NewInvitation]) -> None:
        """Schedule invitations, in one statement. A redelivered or repeated request for the same
        invitation changes nothing."""
        if not invitations:
            return
        scheduled = InvitationStatus.SCHEDULED.value
        rows = [
            {
                "id": invitation.id,
                "tenant_id": invitation.tenant_id,
                "customer_id": invitation.customer_id,
                "email": invitation.email,
                "name": invitation.name,
                "locale": invitation.locale,
                "touchpoint": invitation.touchpoint,
                "trigger_event_id": invitation.trigger_event_id,
                "token_hash": invitation.token_hash,
                "status": scheduled,
                "send_at": invitation.send_at,
                "expires_at": invitation.expires_at,
                "created_at": invitation.created_at,
                "context": invitation.context,
                "trace_context": invitation.trace_context,
            }
            for invitation in invitations
        ]
        await self._session.execute(pg_insert(Invitation).values(rows).on_conflict_do_nothing())

    async def claim_due(self, *, now: datetime, stale_before: datetime, limit: int) -> list[DueInvitation]:
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
        result = await self._session.execute(
            update(Invitation)
            .where(Invitation.id.in_(due.scalar_subquery()))
            .values(
                status=InvitationStatus.SENDING.value,
                sending_started_at=now,
                attempts=Invitation.attempts + 1,
            )
            .returning(*_CLAIMED)
        )
        return [DueInvitation._make(row) for row in result]

    async def tenant_names(self, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not tenant_ids:
            return {}
        table = COMMON.tenants
        # Emails and pages name the company as its customers know it; the slug only if it has no other.
        named = func.coalesce(table.c.display_name, table.c.name).label("name")
        rows = await self._session.execute(select(table.c.id, named).where(table.c.id.in_(set(tenant_ids))))
        return {row.id: row.name for row in rows}

    async def mark_sent(
        self, delivered: Sequence[tuple[uuid.UUID, datetime, str, datetime | None]]
    ) -> list[SentInvitation]:
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
        result = await self._session.execute(
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
                _INVITATIONS.c.trace_context,
            )
        )
        return [SentInvitation._make(row) for row in result]

    async def reschedule(self, retries: Sequence[tuple[uuid.UUID, int, datetime, str]]) -> None:
        """(id, attempts of our claim, next send time, error): tried, to be tried again later."""
        if not retries:
            return
        batch = _claimed_batch(
            "retries", retries, column("send_at", DateTime(timezone=True)), column("error", String)
        )
        await self._session.execute(
            _while_claimed(batch).values(
                status=InvitationStatus.SCHEDULED.value,
                send_at=batch.c.send_at,
                sending_started_at=None,
                last_error=batch.c.error,
            )
        )

    async def fail(self, failures: Sequence[tuple[uuid.UUID, int, str, str]]) -> set[uuid.UUID]:
        """(id, attempts of our claim, error, reason code); returns the invitations marked failed
        just now."""
        if not failures:
            return set()
        batch = _claimed_batch("failures", failures, column("error", String), column("reason", String))
        result = await self._session.execute(
            _while_claimed(batch)
            .values(
                status=InvitationStatus.FAILED.value,
                sending_started_at=None,
                last_error=batch.c.error,
                failure_reason=batch.c.reason,
            )
            .returning(_INVITATIONS.c.id)
        )
        return set(result.scalars())

    async def put_back(self, waits: Sequence[tuple[uuid.UUID, int, datetime]]) -> None:
        """(id, attempts of our claim, slot): back to ``scheduled`` for the slot the tenant's sending
        rate gave it, with the claim's attempt given back: waiting is not trying."""
        if not waits:
            return
        batch = _claimed_batch("waits", waits, column("send_at", DateTime(timezone=True)))
        await self._session.execute(
            _while_claimed(batch).values(
                status=InvitationStatus.SCHEDULED.value,
                send_at=batch.c.send_at,
                sending_started_at=None,
                attempts=_INVITATIONS.c.attempts - 1,
            )
        )

    async def invitation_by_token_hash(self, token_hash: str) -> InvitationLink | None:
        """The invitation a link points at, with the tenant's name and its answer so far."""
        tenants = COMMON.tenants
        row = (
            await self._session.execute(
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
                    Invitation.context,
                    Invitation.trace_context,
                )
                .outerjoin(tenants, tenants.c.id == Invitation.tenant_id)
                .outerjoin(Response, Response.invitation_id == Invitation.id)
                .where(Invitation.token_hash == token_hash)
            )
        ).first()
        return InvitationLink._make(row) if row is not None else None

    async def insert_response(self, response: Response) -> bool:
        """Record an invitation's first answer (its score, and any comment); false when it has an
        answer already (the unique index decides, race-free)."""
        inserted = await self._session.scalar(
            pg_insert(Response)
            .values(
                id=response.id,
                invitation_id=response.invitation_id,
                tenant_id=response.tenant_id,
                customer_id=response.customer_id,
                touchpoint=response.touchpoint,
                score=response.score,
                comment=response.comment,
                responded_at=response.responded_at,
            )
            .on_conflict_do_nothing()
            .returning(Response.id)
        )
        return inserted is not None

    async def replace_score(
        self, invitation_id: uuid.UUID, *, revision: int, score: int, at: datetime
    ) -> ResponseVersion | None:
        """A different score for an answer still at ``revision``; see :meth:`_change_response`."""
        return await self._change_response(invitation_id, revision, {"score": score, "updated_at": at})

    async def record_follow_up(
        self, invitation_id: uuid.UUID, *, revision: int, follow_up: FollowUp, at: datetime
    ) -> ResponseVersion | None:
        """The answers after the score, replacing earlier ones, for an answer still at ``revision``;
        see :meth:`_change_response`."""
        changes: dict[str, object] = {
            "comment": follow_up.comment,
            "recommended": follow_up.recommended,
            "csat": follow_up.csat,
            "effort": follow_up.effort,
            "updated_at": at,
        }
        return await self._change_response(invitation_id, revision, changes)

    async def _change_response(
        self, invitation_id: uuid.UUID, revision: int, changes: dict[str, object]
    ) -> ResponseVersion | None:
        """Change an answer if it is still at ``revision`` (a concurrent change wins otherwise); the
        new revision is one more. Returns the whole answer as it now stands, or ``None``."""
        result = await self._session.execute(
            update(Response)
            .where(Response.invitation_id == invitation_id, Response.revision == revision)
            .values(**changes, revision=Response.revision + 1)
            .returning(*_RESPONSE_VERSION)
        )
        row = result.first()
        return ResponseVersion._make(row) if row is not None else None

    async def mark_responded(self, invitation_id: uuid.UUID, at: datetime) -> None:
        await self._session.execute(
            update(Invitation)
            .where(Invitation.id == invitation_id)
            .values(status=InvitationStatus.RESPONDED.value, responded_at=at)
        )

    async def stamp_once(self, invitation_id: uuid.UUID, stamp: Stamp, at: datetime) -> bool:
        """Set a funnel stamp (``opened_at``, ``clicked_at``, ``unsubscribed_at``) the first time only;
        true if this was the first time."""
        target = _INVITATIONS.c[stamp]
        result = await self._session.execute(
            update(_INVITATIONS)
            .where(_INVITATIONS.c.id == invitation_id, target.is_(None))
            .values({stamp: at})
            .returning(_INVITATIONS.c.id)
        )
        return result.first() is not None

    # --- Suppressions ---------------------------------------------------------------------------

    async def suppress(
        self, rows: Sequence[tuple[uuid.UUID, str, str, datetime]]
    ) -> set[tuple[uuid.UUID, str]]:
        """(tenant, address, reason, at): the first reason recorded stays. Returns the (tenant,
        lower-cased address) pairs suppressed just now, not before. Only the address's hash is
        stored."""
        if not rows:
            return set()
        addresses = {(t, self._address_hash(e)): normalised_address(e) for t, e, _, _ in rows}
        result = await self._session.execute(
            pg_insert(Suppression)
            .values(
                [
                    {"tenant_id": t, "email_hash": self._address_hash(e), "reason": r, "suppressed_at": at}
                    for t, e, r, at in rows
                ]
            )
            .on_conflict_do_nothing()
            .returning(Suppression.tenant_id, Suppression.email_hash)
        )
        return {(row.tenant_id, addresses[(row.tenant_id, row.email_hash)]) for row in result}

    async def suppressed(self, pairs: Sequence[tuple[uuid.UUID, str]]) -> set[tuple[uuid.UUID, str]]:
        """The (tenant, lower-cased address) pairs among ``pairs`` that must not be emailed."""
        if not pairs:
            return set()
        addresses = {
            (tenant, self._address_hash(email)): normalised_address(email) for tenant, email in pairs
        }
        rows = await self._session.execute(
            select(Suppression.tenant_id, Suppression.email_hash).where(
                tuple_(Suppression.tenant_id, Suppression.email_hash).in_(sorted(addresses))
            )
        )
        return {(row.tenant_id, addresses[(row.tenant_id, row.email_hash)]) for row in rows}

    async def cancel_scheduled_to(self, addresses: Sequence[tuple[uuid.UUID, str]]) -> int:
        """Cancel the not-yet-sent invitations to (tenant, address) pairs that must not be emailed."""
        if not addresses:
            return 0
        wanted = sorted({(tenant, email.lower()) for tenant, email in addresses})
        result = await self._session.execute(
            update(Invitation)
            .where(
                tuple_(Invitation.tenant_id, func.lower(Invitation.email)).in_(wanted),
                Invitation.status == InvitationStatus.SCHEDULED.value,
            )
            .values(status=InvitationStatus.CANCELLED.value)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def invitations_for_bounces(
        self, ids: Sequence[uuid.UUID], emails: Sequence[str], sent_since: datetime
    ) -> list[BouncedInvitation]:
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
        rows = await self._session.execute(
            select(
                Invitation.id,
                Invitation.tenant_id,
                Invitation.customer_id,
                Invitation.touchpoint,
                Invitation.email,
            ).where(or_(*conditions))
        )
        return [BouncedInvitation._make(row) for row in rows]

    # --- Settings ------------------------------------------------------------------------------

    async def settings_for(
        self, tenant_ids: Sequence[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, str], dict[str, object]]:
        """(tenant, touchpoint or "") -> stored configuration."""
        if not tenant_ids:
            return {}
        rows = await self._session.execute(
            select(TenantSettings.tenant_id, TenantSettings.touchpoint, TenantSettings.config).where(
                TenantSettings.tenant_id.in_(set(tenant_ids))
            )
        )
        return {(row.tenant_id, row.touchpoint): dict(row.config) for row in rows}

    async def put_settings(
        self, tenant_id: uuid.UUID, touchpoint: str, config: dict[str, object], at: datetime
    ) -> None:
        statement = pg_insert(TenantSettings).values(
            tenant_id=tenant_id, touchpoint=touchpoint, config=config, updated_at=at
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[TenantSettings.tenant_id, TenantSettings.touchpoint],
                set_={"config": statement.excluded.config, "updated_at": statement.excluded.updated_at},
            )
        )

    # --- Lifecycle -----------------------------------------------------------------------------

    async def claim_reminders(self, *, now: datetime, limit: int) -> list[DueInvitation]:
        """Mark up to ``limit`` reminders as sent before sending them: a crash loses a reminder rather
        than sending two. Never after an answer, an unsubscribe, a bounce or expiry."""
        due = (
            select(Invitation.id)
            .where(*_reminder_due(now))
            .order_by(Invitation.reminder_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self._session.execute(
            update(Invitation)
            .where(Invitation.id.in_(due.scalar_subquery()))
            .values(reminded_at=now)
            .returning(*_CLAIMED)
        )
        return [DueInvitation._make(row) for row in result]

    async def record_expired(self, *, now: datetime, limit: int) -> list[InvitationRef]:
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
        result = await self._session.execute(
            update(Invitation)
            .where(Invitation.id.in_(due.scalar_subquery()))
            .values(expiry_recorded_at=now)
            .returning(Invitation.id, Invitation.tenant_id, Invitation.customer_id, Invitation.touchpoint)
        )
        return [InvitationRef._make(row) for row in result]

    async def mark_bounced(self, ids: Sequence[uuid.UUID], at: datetime) -> set[uuid.UUID]:
        """Stamp the bounce once per invitation; return the ids of those newly stamped."""
        if not ids:
            return set()
        result = await self._session.execute(
            update(Invitation)
            .where(Invitation.id.in_(list(set(ids))), Invitation.bounced_at.is_(None))
            .values(bounced_at=at)
            .returning(Invitation.id)
        )
        return set(result.scalars())

    async def cancel_scheduled(self, invitations: Sequence[tuple[uuid.UUID, uuid.UUID]], at: datetime) -> int:
        """Withdraw invitations: one still only scheduled is cancelled; one being sent or sent already
        keeps its state, but its reminder is withdrawn."""
        if not invitations:
            return 0
        wanted = tuple_(Invitation.tenant_id, Invitation.id).in_(list(invitations))
        result = await self._session.execute(
            update(Invitation)
            .where(wanted, Invitation.status == InvitationStatus.SCHEDULED.value)
            .values(status=InvitationStatus.CANCELLED.value)
        )
        await self._session.execute(
            update(Invitation)
            .where(
                wanted,
                Invitation.status.in_([InvitationStatus.SENDING.value, InvitationStatus.SENT.value]),
                Invitation.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=at)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def lift_suppressions(self, addresses: Sequence[tuple[uuid.UUID, str]]) -> None:
        """(tenant, address): the customer re-subscribed; the address may be emailed again."""
        if addresses:
            await self._session.execute(
                delete(Suppression).where(
                    tuple_(Suppression.tenant_id, Suppression.email_hash).in_(
                        sorted({(tenant, self._address_hash(email)) for tenant, email in addresses})
                    )
                )
            )

    async def invitations_of_tenant(
        self, tenant_id: uuid.UUID, *, customer: str | None, status: str | None, limit: int
    ) -> Sequence[Invitation]:
        query = select(Invitation).where(Invitation.tenant_id == tenant_id)
        if customer is not None:
            query = query.where(Invitation.customer_id == customer)
        if status is not None:
            query = query.where(Invitation.status == status)
        result = await self._session.scalars(
            query.order_by(Invitation.created_at.desc(), Invitation.id).limit(limit)
        )
        return result.all()

    async def send_queue(self, now: datetime) -> Due:
        """When the longest-waiting invitation that is due to be sent became due, and how many are
        due (the send queue's age and depth), in one query."""
        oldest, count = (
            await self._session.execute(
                select(func.min(Invitation.send_at), func.count()).where(
                    Invitation.status == InvitationStatus.SCHEDULED.value, Invitation.send_at <= now
                )
            )
        ).one()
        return Due(oldest, int(count))

    async def reminder_queue(self, now: datetime) -> Due:
        """When the longest-waiting reminder that is due became due, and how many are due."""
        oldest, count = (
            await self._session.execute(
                select(func.min(Invitation.reminder_due_at), func.count()).where(*_reminder_due(now))
            )
        ).one()
        return Due(oldest, int(count))

    # --- Rates every replica shares (domain.pacing.SharedPace, domain.ratelimit.SharedBucket) ---

    async def give_slots(self, key: str, n: int, interval: float, now: float) -> float:
        """Give ``n`` slots of the rate ``key`` at ``now`` and return its row after: ``SharedPace.advance``
        in one statement, so replicas giving slots at once queue on the row, never share a slot."""
        tat = await self._session.scalar(_GIVE_SLOTS, {"key": key, "n": n, "step": interval, "now": now})
        return float(cast(float, tat))

    async def take_held_slots(
        self, invitation_ids: Sequence[uuid.UUID], now: float
    ) -> dict[uuid.UUID, float]:
        """The slots these invitations were given when the rate put them back, taken (deleted); and
        the slots of invitations that never came back (withdrawn, answered) forgotten after an hour."""
        await self._session.execute(delete(RateSlot).where(RateSlot.at < now - 3600))
        if not invitation_ids:
            return {}
        rows = await self._session.execute(
            delete(RateSlot)
            .where(RateSlot.invitation_id.in_(list(invitation_ids)))
            .returning(RateSlot.invitation_id, RateSlot.at)
        )
        return {invitation_id: at for invitation_id, at in rows}

    async def hold_slots(self, slots: Sequence[tuple[uuid.UUID, float]]) -> None:
        """(invitation, when its slot is): paid for, kept until it comes back."""
        if not slots:
            return
        insert = pg_insert(RateSlot).values([{"invitation_id": i, "at": at} for i, at in slots])
        await self._session.execute(
            insert.on_conflict_do_update(
                index_elements=[RateSlot.invitation_id], set_={"at": insert.excluded.at}
            )
        )

    async def admit(
        self, checked: Sequence[tuple[str, float, float]], taken: Sequence[str], now: float
    ) -> float:
        """(key, interval, tolerance) of each bucket a public request is checked against, and the
        keys it spends when all allow it: the seconds to wait (0: served, and spent), in one
        statement that locks the rows it reads, so replicas admitting at once queue on them."""
        wait = await self._session.scalar(
            _ADMIT,
            {
                "keys": [key for key, _, _ in checked],
                "steps": [step for _, step, _ in checked],
                "tolerances": [tolerance for _, _, tolerance in checked],
                "takes": [key in taken for key, _, _ in checked],
                "now": now,
            },
        )
        return float(cast(float, wait))

    async def charge(self, key: str, interval: float, tolerance: float, now: float) -> None:
        """Count one request against ``key`` even past its limit, into debt of at most one
        tolerance more (``SharedBucket.charge``)."""
        await self._session.execute(
            _CHARGE, {"key": key, "step": interval, "tolerance": tolerance, "now": now}
        )

    async def forget_full_buckets(self, now: float) -> None:
        """A row whose ``tat`` has passed is a full bucket, as no row is."""
        await self._session.execute(
            sql_text("DELETE FROM survey.rate_buckets WHERE tat < :now"), {"now": now}
        )


_RETAIN_COMMENTS = retention_update(
    schema="survey",
    table="responses",
    key="id",
    time_column="responded_at",
    months="retention_comments_months",
    pending="r.comment IS NOT NULL",
    changes="comment = NULL",
)
# Only once the link has expired: nothing sends to, reminds or answers the invitation any more.
_RETAIN_INVITATIONS = retention_update(
    schema="survey",
    table="invitations",
    key="id",
    time_column="created_at",
    months="retention_invitations_months",
    pending="r.email <> '' AND r.expires_at < CAST(:now AS timestamptz)",
    changes="email = '', name = NULL, context = NULL, trace_context = NULL, last_error = NULL",
)


def _reminder_due(now: datetime) -> list[ColumnElement[bool]]:
    """An invitation whose reminder is due: sent, not answered, unsubscribed, bounced, withdrawn or
    expired, and not reminded yet. The reminders job claims these, and its queue gauges count them."""
    return [
        Invitation.reminder_due_at <= now,
        Invitation.reminded_at.is_(None),
        Invitation.responded_at.is_(None),
        Invitation.unsubscribed_at.is_(None),
        Invitation.bounced_at.is_(None),
        Invitation.withdrawn_at.is_(None),
        Invitation.status == InvitationStatus.SENT.value,
        Invitation.expires_at > now,
    ]


_GIVE_SLOTS = sql_text(
    """
    INSERT INTO survey.rate_buckets AS b (key, tat)
    VALUES (:key, CAST(:now AS float8) + CAST(:n AS integer) * CAST(:step AS float8))
    ON CONFLICT (key) DO UPDATE
    SET tat = greatest(b.tat, CAST(:now AS float8)) + CAST(:n AS integer) * CAST(:step AS float8)
    RETURNING tat
    """
)
_ADMIT = sql_text(
    """
    WITH asked AS (
        SELECT * FROM unnest(
            CAST(:keys AS text[]), CAST(:steps AS float8[]), CAST(:tolerances AS float8[]),
            CAST(:takes AS boolean[])
        ) AS a(key, step, tolerance, take)
    ), held AS (
        SELECT b.key, b.tat FROM survey.rate_buckets b JOIN asked USING (key) ORDER BY b.key FOR UPDATE OF b
    ), verdict AS (
        SELECT coalesce(max(greatest(0, h.tat + a.step - a.tolerance - CAST(:now AS float8))), 0) AS wait
        FROM asked a JOIN held h USING (key)
    ), spent AS (
        INSERT INTO survey.rate_buckets AS b (key, tat)
        SELECT key, CAST(:now AS float8) + step FROM asked WHERE take AND (SELECT wait FROM verdict) = 0
        ON CONFLICT (key) DO UPDATE
        SET tat = greatest(b.tat, CAST(:now AS float8)) + (excluded.tat - CAST(:now AS float8))
        RETURNING 1
    )
    SELECT wait FROM verdict
    """
)
_CHARGE = sql_text(
    """
    INSERT INTO survey.rate_buckets AS b (key, tat)
    VALUES (:key, CAST(:now AS float8) + CAST(:step AS float8))
    ON CONFLICT (key) DO UPDATE SET tat = least(
        greatest(b.tat, CAST(:now AS float8)) + CAST(:step AS float8),
        CAST(:now AS float8) + 2 * CAST(:tolerance AS float8)
    )
    """
)
