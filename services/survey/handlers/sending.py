"""Sending: claiming the invitations and reminders that are due, and recording how each delivery
went (sent, retried, held back, failed, refused as a hard bounce) with its events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.common import tracing
from libs.common.db import UnitOfWork
from libs.common.events import (
    SURVEY_FAILED,
    SurveyBounced,
    SurveyExpired,
    SurveyFailed,
    SurveyReminded,
    SurveySent,
)
from services.survey.domain.delivery import Failed, Outcome, Retry, Sent, Wait
from services.survey.domain.languages import choose_language
from services.survey.handlers.emitting import STEP_NAMESPACE, emit_hygiene, emit_step
from services.survey.rendering import Branding, Questions
from services.survey.repository import DueInvitation, SentInvitation, SurveyRepository
from services.survey.schemas import tenant_settings, touchpoint_settings

_SENT_NAMESPACE = uuid.UUID("0d7d6c1e-5b1f-4c7e-9d55-2a3c8e9f4b61")


def sent_event_id(invitation_id: uuid.UUID) -> str:
    """One ``survey.sent`` per invitation however often the marking is retried. Not the invitation
    id itself: that is the id of the ``survey.requested`` event, and consumers key on event ids."""
    return str(uuid.uuid5(_SENT_NAMESPACE, str(invitation_id)))


@dataclass(frozen=True, slots=True)
class SurveyLook:
    """A tenant's settings as they apply to one invitation in one language."""

    branding: Branding = field(default_factory=Branding)
    questions: Questions = field(default_factory=Questions)
    default_language: str | None = None
    reminder_after: timedelta | None = None
    send_rate_per_minute: int = 600


def look_for(
    configs: dict[tuple[uuid.UUID, str], dict[str, object]],
    tenant_id: uuid.UUID,
    touchpoint: str,
    tenant_name: str | None,
) -> SurveyLook:
    tenant = tenant_settings(configs.get((tenant_id, "")))
    here = touchpoint_settings(configs.get((tenant_id, touchpoint)))
    return SurveyLook(
        branding=Branding(
            company=tenant_name,
            sender_name=tenant.sender_name,
            reply_to=tenant.reply_to,
            logo_url=tenant.logo_url,
            brand_colour=tenant.brand_colour,
            open_tracking=tenant.open_tracking,
        ),
        questions=Questions(
            touchpoint_label=None,
            ask_recommended=here.ask_recommended,
            ask_csat=here.ask_csat,
            ask_effort=here.ask_effort,
            extra={"labels": dict(here.label)},
        ),
        default_language=tenant.default_language,
        reminder_after=timedelta(days=tenant.reminder_after_days) if tenant.reminder_after_days else None,
        send_rate_per_minute=tenant.send_rate_per_minute,
    )


def questions_in(look: SurveyLook, language: str) -> Questions:
    """The touchpoint is named only in the person's own language; never half in another."""
    labels: dict[str, str] = look.questions.extra.get("labels", {})
    q = look.questions
    return Questions(labels.get(language), q.ask_recommended, q.ask_csat, q.ask_effort)


@dataclass(frozen=True, slots=True)
class ClaimedInvitation:
    """An invitation this sender has claimed; ``attempts`` includes this claim."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    email: str
    name: str | None
    touchpoint: str
    attempts: int
    expires_at: datetime
    tenant_name: str | None
    language: str = "en"
    look: SurveyLook = field(default_factory=SurveyLook)
    #: The address unsubscribed, bounced or complained since the invitation was made.
    suppressed: bool = False
    #: The request's trace context: sending continues the purchase's trace.
    trace_context: dict[str, str] | None = None


#: A batch's deliveries: each claimed invitation with how its delivery went.
Outcomes = Sequence[tuple[ClaimedInvitation, Outcome]]


async def _claimed(
    uow: UnitOfWork[SurveyRepository], rows: Sequence[DueInvitation]
) -> list[ClaimedInvitation]:
    tenant_ids = [row.tenant_id for row in rows]
    names = await uow.repository.tenant_names(tenant_ids)
    configs = await uow.repository.settings_for(tenant_ids)
    suppressed = await uow.repository.suppressed([(row.tenant_id, row.email) for row in rows])
    claimed = []
    for row in sorted(rows, key=lambda row: row.send_at):
        look = look_for(configs, row.tenant_id, row.touchpoint, names.get(row.tenant_id))
        claimed.append(
            ClaimedInvitation(
                id=row.id,
                tenant_id=row.tenant_id,
                customer_id=row.customer_id,
                email=row.email,
                name=row.name,
                touchpoint=row.touchpoint,
                attempts=row.attempts,
                expires_at=row.expires_at,
                tenant_name=names.get(row.tenant_id),
                language=choose_language(row.locale, look.default_language),
                look=look,
                suppressed=(row.tenant_id, row.email.lower()) in suppressed,
                trace_context=row.trace_context,
            )
        )
    return claimed


async def claim_due(
    uow: UnitOfWork[SurveyRepository], *, now: datetime, sending_timeout: timedelta, limit: int
) -> list[ClaimedInvitation]:
    rows = await uow.repository.claim_due(now=now, stale_before=now - sending_timeout, limit=limit)
    return await _claimed(uow, rows)


async def claim_reminders(
    uow: UnitOfWork[SurveyRepository], *, now: datetime, limit: int
) -> list[ClaimedInvitation]:
    """Reminders due, marked as sent already (at most once); ``survey.reminded`` for each."""
    rows = await uow.repository.claim_reminders(now=now, limit=limit)
    claimed = await _claimed(uow, rows)
    for invitation in claimed:
        if not invitation.suppressed:
            emit_step(uow, SurveyReminded, invitation.id, invitation, now)
    return [invitation for invitation in claimed if not invitation.suppressed]


async def record_expired(uow: UnitOfWork[SurveyRepository], *, now: datetime, limit: int) -> int:
    rows = await uow.repository.record_expired(now=now, limit=limit)
    for row in rows:
        emit_step(uow, SurveyExpired, row.id, row, now)
    return len(rows)


async def record_outcomes(uow: UnitOfWork[SurveyRepository], outcomes: Outcomes, *, now: datetime) -> int:
    """Record a batch's deliveries; ``survey.sent`` for each newly sent one. A refused address is a
    hard bounce: it is suppressed, and the trigger hears of it. Returns how many were sent."""
    newly_sent = await uow.repository.mark_sent(_sent(outcomes))
    await uow.repository.reschedule(_retries(outcomes))
    await uow.repository.put_back(_waits(outcomes))
    await _record_failures(uow, outcomes, now)
    await _record_hard_bounces(uow, outcomes, now)
    for row in newly_sent:
        _emit_sent(uow, row)
    return len(newly_sent)


def _sent(outcomes: Outcomes) -> list[tuple[uuid.UUID, datetime, str, datetime | None]]:
    """Each sent invitation with its language, and when its reminder is due (if the tenant wants one)."""
    return [
        (
            claimed.id,
            outcome.at,
            claimed.language,
            outcome.at + claimed.look.reminder_after if claimed.look.reminder_after else None,
        )
        for claimed, outcome in outcomes
        if isinstance(outcome, Sent)
    ]


def _retries(outcomes: Outcomes) -> list[tuple[uuid.UUID, int, datetime, str]]:
    return [
        (claimed.id, claimed.attempts, outcome.at, outcome.error)
        for claimed, outcome in outcomes
        if isinstance(outcome, Retry)
    ]


def _waits(outcomes: Outcomes) -> list[tuple[uuid.UUID, int, datetime]]:
    return [
        (claimed.id, claimed.attempts, outcome.at)
        for claimed, outcome in outcomes
        if isinstance(outcome, Wait)
    ]


async def _record_failures(uow: UnitOfWork[SurveyRepository], outcomes: Outcomes, now: datetime) -> None:
    """Give up the failed invitations; ``survey.failed`` for each this claim was the one to fail."""
    failures = [
        (claimed.id, claimed.attempts, outcome.error, outcome.reason)
        for claimed, outcome in outcomes
        if isinstance(outcome, Failed)
    ]
    failed = await uow.repository.fail(failures)
    for claimed, outcome in outcomes:
        if isinstance(outcome, Failed) and claimed.id in failed:
            _emit_failed(uow, claimed, outcome, now)


async def _record_hard_bounces(uow: UnitOfWork[SurveyRepository], outcomes: Outcomes, now: datetime) -> None:
    """Suppress the addresses the receiving server refused, and tell the trigger."""
    bounced = [
        claimed for claimed, outcome in outcomes if isinstance(outcome, Failed) and outcome.hard_bounce
    ]
    if not bounced:
        return
    await uow.repository.suppress(
        [(claimed.tenant_id, claimed.email, "hard_bounce", now) for claimed in bounced]
    )
    for claimed in await _newly_bounced(uow, bounced, now):
        emit_step(uow, SurveyBounced, claimed.id, claimed, now)
        emit_hygiene(uow, claimed.tenant_id, claimed.customer_id, claimed.email, "hard_bounce", now)


def _emit_sent(uow: UnitOfWork[SurveyRepository], row: SentInvitation) -> None:
    data = SurveySent(
        invitation_id=row.id, customer_id=row.customer_id, touchpoint=row.touchpoint, sent_at=row.sent_at
    )
    # Recorded with a batch of others: the event continues its own invitation's trace.
    with tracing.span(
        "survey sent",
        parent=row.trace_context,
        attributes={"nps.tenant_id": str(row.tenant_id), "nps.touchpoint": row.touchpoint},
    ):
        uow.emit(
            data,
            tenant_id=row.tenant_id,
            subject=row.customer_id,
            event_id=sent_event_id(row.id),
            time=row.sent_at,
        )


def _emit_failed(
    uow: UnitOfWork[SurveyRepository], claimed: ClaimedInvitation, outcome: Failed, at: datetime
) -> None:
    """``survey.failed``: the invitation will never be delivered; reporting counts it, the
    trigger stops treating it as outstanding."""
    failed = SurveyFailed(
        invitation_id=claimed.id,
        customer_id=claimed.customer_id,
        touchpoint=claimed.touchpoint,
        at=at,
        reason=outcome.reason,
        detail=outcome.error[:500],
    )
    uow.emit(
        failed,
        tenant_id=claimed.tenant_id,
        subject=claimed.customer_id,
        event_id=str(uuid.uuid5(STEP_NAMESPACE, f"{SURVEY_FAILED}:{claimed.id}")),
        time=at,
    )


async def _newly_bounced(
    uow: UnitOfWork[SurveyRepository], claimed: Sequence[ClaimedInvitation], now: datetime
) -> list[ClaimedInvitation]:
    stamped = await uow.repository.mark_bounced([c.id for c in claimed], now)
    return [c for c in claimed if c.id in stamped]
