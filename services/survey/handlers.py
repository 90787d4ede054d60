"""The survey's commands and event handlers. They load state, ask the domain, record the results
and the outgoing events in the unit of work, and return. They never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from libs.common.db import UnitOfWork
from libs.common.events import (
    CUSTOMER_UNSUBSCRIBED,
    SURVEY_BOUNCED,
    SURVEY_CLICKED,
    SURVEY_EXPIRED,
    SURVEY_FAILED,
    SURVEY_OPENED,
    SURVEY_REMINDED,
    SURVEY_REQUESTED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    SURVEY_SENT,
    SURVEY_UNSUBSCRIBED,
    Contract,
    CustomerUnsubscribed,
    Event,
    SuppressionLifted,
    SurveyCancelled,
    SurveyFailed,
    SurveyRequested,
    SurveyResponded,
    SurveyResponseUpdated,
    SurveySent,
    SurveyStep,
    new_event,
)
from libs.common.kafka import RejectEvent
from libs.common.tenancy import TENANCY_HANDLERS
from services.survey import repository
from services.survey.domain.answers import AnswerState, FollowUp, answer_state, may_change_score
from services.survey.domain.bounces import BounceKind, BounceReport
from services.survey.domain.delivery import Failed, InvitationStatus, Outcome, Retry, Sent, Wait
from services.survey.domain.languages import choose_language
from services.survey.domain.tokens import looks_like_token, survey_token, token_hash, token_matches
from services.survey.rendering import Branding, Questions, invitation_id_from_message_id
from services.survey.schemas import tenant_settings, touchpoint_settings

SOURCE = "/nps/survey"
_SENT_NAMESPACE = uuid.UUID("0d7d6c1e-5b1f-4c7e-9d55-2a3c8e9f4b61")
_RESPONSE_NAMESPACE = uuid.UUID("a4f0b7c2-8e13-4d6a-b5c9-71e2d3f8a046")
_STEP_NAMESPACE = uuid.UUID("5c0f3b7e-1a2d-4e8f-9b6c-3d4e5f607182")
#: How far back a bounce report naming only an address is matched to invitations sent to it.
BOUNCE_LOOKBACK = timedelta(days=14)


def sent_event_id(invitation_id: uuid.UUID) -> str:
    """One ``survey.sent`` per invitation however often the marking is retried. Not the invitation
    id itself: that is the id of the ``survey.requested`` event, and consumers key on event ids."""
    return str(uuid.uuid5(_SENT_NAMESPACE, str(invitation_id)))


def response_id_for(invitation_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_RESPONSE_NAMESPACE, str(invitation_id))


# --- Consuming requests ---------------------------------------------------------------------------


async def handle_consumed(
    events: list[Event[Contract]], uow: UnitOfWork, *, token_secret: str, token_ttl: timedelta, now: datetime
) -> None:
    """The consumer's batch: tenancy events one by one, survey requests in one insert."""
    requests: list[Event[SurveyRequested]] = []
    cancellations: list[tuple[uuid.UUID, uuid.UUID]] = []
    lifted: list[tuple[uuid.UUID, str]] = []
    for event in events:
        if event.type == SURVEY_REQUESTED:
            assert isinstance(event.data, SurveyRequested)
            requests.append(Event(event.envelope, event.data))
        elif isinstance(event.data, SurveyCancelled):
            cancellations.append((uuid.UUID(event.tenant_id), event.data.invitation_id))
        elif isinstance(event.data, SuppressionLifted):
            lifted.append((uuid.UUID(event.tenant_id), event.data.email))
        elif (tenancy := TENANCY_HANDLERS.get(event.type)) is not None:
            await tenancy(event, uow)
    # A re-subscribe comes before the invitations decided after it (one partition per customer).
    await repository.lift_suppressions(uow.session, lifted)
    await schedule_invitations(requests, uow, token_secret=token_secret, token_ttl=token_ttl, now=now)
    # After scheduling: a request and its cancellation share a partition, the cancellation second.
    await repository.cancel_scheduled(uow.session, cancellations, now)


async def schedule_invitations(
    requests: Sequence[Event[SurveyRequested]],
    uow: UnitOfWork,
    *,
    token_secret: str,
    token_ttl: timedelta,
    now: datetime,
) -> None:
    """One invitation per invitation id, ``scheduled`` for the requested time. (Requests of a
    tenant this service has not heard of yet never get here: the consumer holds them until the
    tenant's own event arrives, see ``libs.common.kafka``.)"""
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for request in requests:
        data = request.data
        try:
            tenant_id = uuid.UUID(request.tenant_id)
        except ValueError:
            raise RejectEvent(f"tenantid: {request.tenant_id[:100]!r} is not a tenant id") from None
        rows.setdefault(
            data.invitation_id,
            {
                "id": data.invitation_id,
                "tenant_id": tenant_id,
                "customer_id": data.customer_id,
                "email": data.email,
                "name": data.name,
                "locale": data.locale,
                "touchpoint": data.touchpoint,
                "trigger_event_id": data.trigger_event_id,
                "token_hash": token_hash(survey_token(token_secret, data.invitation_id)),
                "status": InvitationStatus.SCHEDULED.value,
                "send_at": data.send_at,
                "expires_at": data.send_at + token_ttl,
                "created_at": now,
            },
        )
    await repository.insert_invitations(uow.session, list(rows.values()))


# --- Sending --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyLook:
    """A tenant's settings as they apply to one invitation in one language."""

    branding: Branding = field(default_factory=Branding)
    questions: Questions = field(default_factory=Questions)
    default_language: str | None = None
    reminder_after: timedelta | None = None
    send_rate_per_minute: int = 600


def look_for(
    configs: dict[tuple[uuid.UUID, str], dict[str, Any]],
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


async def _claimed(uow: UnitOfWork, rows: Sequence[Any]) -> list[ClaimedInvitation]:
    tenant_ids = [row.tenant_id for row in rows]
    names = await repository.tenant_names(uow.session, tenant_ids)
    configs = await repository.settings_for(uow.session, tenant_ids)
    suppressed = await repository.suppressed(uow.session, [(row.tenant_id, row.email) for row in rows])
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
            )
        )
    return claimed


async def claim_due(
    uow: UnitOfWork, *, now: datetime, sending_timeout: timedelta, limit: int
) -> list[ClaimedInvitation]:
    rows = await repository.claim_due(uow.session, now=now, stale_before=now - sending_timeout, limit=limit)
    return await _claimed(uow, rows)


async def claim_reminders(uow: UnitOfWork, *, now: datetime, limit: int) -> list[ClaimedInvitation]:
    """Reminders due, marked as sent already (at most once); ``survey.reminded`` for each."""
    rows = await repository.claim_reminders(uow.session, now=now, limit=limit)
    claimed = await _claimed(uow, rows)
    for invitation in claimed:
        if not invitation.suppressed:
            _emit_step(uow, SURVEY_REMINDED, invitation.id, invitation, now)
    return [invitation for invitation in claimed if not invitation.suppressed]


async def record_expired(uow: UnitOfWork, *, now: datetime, limit: int) -> int:
    rows = await repository.record_expired(uow.session, now=now, limit=limit)
    for row in rows:
        _emit_step(uow, SURVEY_EXPIRED, row.id, row, now)
    return len(rows)


class _Invited(Protocol):
    """Whose invitation a funnel step is about: an invitation row, a claimed one or a link."""

    @property
    def tenant_id(self) -> uuid.UUID: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def touchpoint(self) -> str: ...


def _emit_step(uow: UnitOfWork, step: str, invitation_id: uuid.UUID, of: _Invited, at: datetime) -> None:
    """One event per invitation and step: the id is derived, so repeats are deduplicated downstream."""
    uow.emit(_step_event(step, invitation_id, of, at))


def _step_event(
    step: str, invitation_id: uuid.UUID, of: _Invited, at: datetime, *, machine: bool = False
) -> Event[Contract]:
    return new_event(
        step,
        tenant_id=str(of.tenant_id),
        data=SurveyStep(
            invitation_id=invitation_id,
            customer_id=of.customer_id,
            touchpoint=of.touchpoint,
            at=at,
            machine=machine,
        ),
        subject=of.customer_id,
        source=SOURCE,
        event_id=str(uuid.uuid5(_STEP_NAMESPACE, f"{step}:{'machine:' if machine else ''}{invitation_id}")),
        time=at,
    )


def _emit_hygiene(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    customer_id: str,
    email: str,
    reason: Literal["unsubscribed", "hard_bounce", "complaint"],
    at: datetime,
) -> None:
    """Tell the trigger never to ask this address again (until a re-subscribe)."""
    uow.emit(
        new_event(
            CUSTOMER_UNSUBSCRIBED,
            tenant_id=str(tenant_id),
            data=CustomerUnsubscribed(customer_id=customer_id, email=email, reason=reason, occurred_at=at),
            subject=customer_id,
            source=SOURCE,
            event_id=str(uuid.uuid5(_STEP_NAMESPACE, f"{reason}:{tenant_id}:{email.lower()}")),
            time=at,
        )
    )


async def record_outcomes(
    uow: UnitOfWork, outcomes: Sequence[tuple[ClaimedInvitation, Outcome]], *, now: datetime
) -> int:
    """Record a batch's deliveries; ``survey.sent`` for each newly sent one. A refused address is a
    hard bounce: it is suppressed, and the trigger hears of it. Returns how many were sent."""
    sent = [
        (
            claimed.id,
            outcome.at,
            claimed.language,
            outcome.at + claimed.look.reminder_after if claimed.look.reminder_after else None,
        )
        for claimed, outcome in outcomes
        if isinstance(outcome, Sent)
    ]
    retries = [
        (claimed.id, claimed.attempts, outcome.at, outcome.error)
        for claimed, outcome in outcomes
        if isinstance(outcome, Retry)
    ]
    waits = [
        (claimed.id, claimed.attempts, outcome.at)
        for claimed, outcome in outcomes
        if isinstance(outcome, Wait)
    ]
    failures = [
        (claimed.id, claimed.attempts, outcome.error, outcome.reason)
        for claimed, outcome in outcomes
        if isinstance(outcome, Failed)
    ]
    newly_sent = await repository.mark_sent(uow.session, sent)
    await repository.reschedule(uow.session, retries)
    await repository.put_back(uow.session, waits)
    failed = {row.id for row in await repository.fail(uow.session, failures)}
    for claimed, outcome in outcomes:
        if isinstance(outcome, Failed) and claimed.id in failed:
            _emit_failed(uow, claimed, outcome, now)
    bounced = [
        claimed for claimed, outcome in outcomes if isinstance(outcome, Failed) and outcome.hard_bounce
    ]
    if bounced:
        await repository.suppress(
            uow.session, [(claimed.tenant_id, claimed.email, "hard_bounce", now) for claimed in bounced]
        )
        for claimed in await _newly_bounced(uow, bounced, now):
            _emit_step(uow, SURVEY_BOUNCED, claimed.id, claimed, now)
            _emit_hygiene(uow, claimed.tenant_id, claimed.customer_id, claimed.email, "hard_bounce", now)
    for row in newly_sent:
        data = SurveySent(
            invitation_id=row.id, customer_id=row.customer_id, touchpoint=row.touchpoint, sent_at=row.sent_at
        )
        uow.emit(
            new_event(
                SURVEY_SENT,
                tenant_id=str(row.tenant_id),
                data=data,
                subject=row.customer_id,
                source=SOURCE,
                event_id=sent_event_id(row.id),
                time=row.sent_at,
            )
        )
    return len(newly_sent)


def _emit_failed(uow: UnitOfWork, claimed: ClaimedInvitation, outcome: Failed, at: datetime) -> None:
    """``survey.failed``: the invitation will never be delivered; reporting counts it, the
    trigger stops treating it as outstanding."""
    uow.emit(
        new_event(
            SURVEY_FAILED,
            tenant_id=str(claimed.tenant_id),
            data=SurveyFailed(
                invitation_id=claimed.id,
                customer_id=claimed.customer_id,
                touchpoint=claimed.touchpoint,
                at=at,
                reason=outcome.reason,
                detail=outcome.error[:500],
            ),
            subject=claimed.customer_id,
            source=SOURCE,
            event_id=str(uuid.uuid5(_STEP_NAMESPACE, f"{SURVEY_FAILED}:{claimed.id}")),
            time=at,
        )
    )


async def _newly_bounced(
    uow: UnitOfWork, claimed: Sequence[ClaimedInvitation], now: datetime
) -> list[ClaimedInvitation]:
    stamped = {row.id for row in await repository.mark_bounced(uow.session, [c.id for c in claimed], now)}
    return [c for c in claimed if c.id in stamped]


async def handle_bounces(
    uow: UnitOfWork, reports: Sequence[BounceReport], *, now: datetime
) -> dict[str, int]:
    """Provider bounce events and DSN emails. A hard bounce or a complaint suppresses the address in
    every tenant that emailed it recently and tells the trigger; a soft bounce changes nothing (the
    server will retry, and so would we). Repeated reports are harmless."""
    lasting = [r for r in reports if r.kind in (BounceKind.HARD, BounceKind.COMPLAINT)]
    by_id = {
        invitation_id: report
        for report in lasting
        if (invitation_id := invitation_id_from_message_id(report.message_id)) is not None
    }
    by_address = [report for report in lasting if invitation_id_from_message_id(report.message_id) is None]
    rows = await repository.invitations_for_bounces(
        uow.session, list(by_id), [r.recipient for r in by_address], now - BOUNCE_LOOKBACK
    )
    kinds = {r.recipient.lower(): r.kind for r in by_address}
    matched: list[tuple[Any, BounceKind]] = []
    for row in rows:
        report = by_id.get(row.id)
        kind = report.kind if report is not None else kinds.get(row.email.lower())
        if kind is not None:
            matched.append((row, kind))
    reason = {BounceKind.HARD: "hard_bounce", BounceKind.COMPLAINT: "complaint"}
    newly = await repository.suppress(
        uow.session, [(row.tenant_id, row.email, reason[kind], now) for row, kind in matched]
    )
    stamped = {
        row.id for row in await repository.mark_bounced(uow.session, [row.id for row, _ in matched], now)
    }
    announced: set[tuple[uuid.UUID, str]] = set()
    await repository.cancel_scheduled_to(uow.session, [(row.tenant_id, row.email) for row, _ in matched])
    for row, kind in matched:
        if row.id in stamped:
            _emit_step(uow, SURVEY_BOUNCED, row.id, row, now)
        pair = (row.tenant_id, row.email.lower())
        # Only the first report that suppresses an address reaches the trigger.
        if pair in newly and pair not in announced:
            announced.add(pair)
            hygiene: Literal["hard_bounce", "complaint"] = (
                "complaint" if kind is BounceKind.COMPLAINT else "hard_bounce"
            )
            _emit_hygiene(uow, row.tenant_id, row.customer_id, row.email, hygiene, now)
    return {
        "reports": len(reports),
        "hard_bounces": sum(1 for r in reports if r.kind is BounceKind.HARD),
        "soft_bounces": sum(1 for r in reports if r.kind is BounceKind.SOFT),
        "complaints": sum(1 for r in reports if r.kind is BounceKind.COMPLAINT),
        "invitations_matched": len(matched),
    }


# --- Answering ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyLink:
    """The invitation a survey link points at, as the public pages need it, with its answer so far."""

    invitation_id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    email: str
    name: str | None
    touchpoint: str
    expires_at: datetime
    responded_at: datetime | None
    tenant_name: str | None
    language: str = "en"
    look: SurveyLook = field(default_factory=SurveyLook)
    score: int | None = None
    comment: str | None = None
    recommended: bool | None = None
    csat: int | None = None
    effort: int | None = None
    revision: int = 0
    unsubscribed: bool = False
    sent_at: datetime | None = None
    reminded_at: datetime | None = None

    def state(self, now: datetime) -> AnswerState:
        return answer_state(responded_at=self.responded_at, expires_at=self.expires_at, now=now)

    @property
    def questions(self) -> Questions:
        return questions_in(self.look, self.language)

    @property
    def last_emailed_at(self) -> datetime | None:
        """When the latest email with this link went out: the invitation, or its reminder."""
        return max((at for at in (self.sent_at, self.reminded_at) if at is not None), default=None)


async def find_link(uow: UnitOfWork, token: str) -> SurveyLink | None:
    if not looks_like_token(token):
        return None
    row = await repository.invitation_by_token_hash(uow.session, token_hash(token))
    if row is None or not token_matches(token, row.token_hash):
        return None
    configs = await repository.settings_for(uow.session, [row.tenant_id])
    look = look_for(configs, row.tenant_id, row.touchpoint, row.tenant_name)
    return SurveyLink(
        invitation_id=row.id,
        tenant_id=row.tenant_id,
        customer_id=row.customer_id,
        email=row.email,
        name=row.name,
        touchpoint=row.touchpoint,
        expires_at=row.expires_at,
        responded_at=row.responded_at,
        tenant_name=row.tenant_name,
        language=row.language or choose_language(row.locale, look.default_language),
        look=look,
        score=row.score,
        comment=row.comment,
        recommended=row.recommended,
        csat=row.csat,
        effort=row.effort,
        revision=row.revision or 0,
        unsubscribed=row.unsubscribed_at is not None,
        sent_at=row.sent_at,
        reminded_at=row.reminded_at,
    )


ScoreResult = Literal["recorded", "replaced", "unchanged", "final"]


async def record_score(
    uow: UnitOfWork, link: SurveyLink, score: int, *, now: datetime, grace: timedelta
) -> tuple[ScoreResult, SurveyLink]:
    """The score counts as soon as it is confirmed (``survey.responded``). A different score inside
    the grace period replaces it (``survey.response_updated``); after that the answer is final.
    Returns what happened and the link as it now stands."""
    response_id = response_id_for(link.invitation_id)
    if link.responded_at is None:
        recorded = await repository.insert_response(
            uow.session,
            {
                "id": response_id,
                "invitation_id": link.invitation_id,
                "tenant_id": link.tenant_id,
                "customer_id": link.customer_id,
                "touchpoint": link.touchpoint,
                "score": score,
                "comment": None,
                "responded_at": now,
            },
        )
        if not recorded:
            return "final", link  # a concurrent first answer won; the person sees the answered page
        await repository.mark_responded(uow.session, link.invitation_id, now)
        data = SurveyResponded(
            response_id=response_id,
            invitation_id=link.invitation_id,
            customer_id=link.customer_id,
            email=link.email,
            name=link.name,
            touchpoint=link.touchpoint,
            score=score,
            comment=None,
            responded_at=now,
        )
        uow.emit(
            new_event(
                SURVEY_RESPONDED,
                tenant_id=str(link.tenant_id),
                data=data,
                subject=link.customer_id,
                source=SOURCE,
                event_id=str(response_id),
                time=now,
            )
        )
        return "recorded", replace(link, responded_at=now, score=score, revision=1)
    if not may_change_score(responded_at=link.responded_at, now=now, grace=grace):
        return "final", link
    if score == link.score:
        return "unchanged", link
    updated = await repository.update_response(
        uow.session, link.invitation_id, revision=link.revision, values_={"score": score, "updated_at": now}
    )
    if updated is None:
        return "final", link
    _emit_update(uow, link, updated)
    return "replaced", _as_updated(link, updated)


async def record_follow_up(
    uow: UnitOfWork, link: SurveyLink, answers: FollowUp, *, now: datetime
) -> SurveyLink | None:
    """The answers after the score update the response (``survey.response_updated``). Returns the
    link as it now stands; ``None`` if there is no score yet, or a concurrent change won."""
    if link.responded_at is None:
        return None
    updated = await repository.update_response(
        uow.session,
        link.invitation_id,
        revision=link.revision,
        values_={
            "comment": answers.comment,
            "recommended": answers.recommended,
            "csat": answers.csat,
            "effort": answers.effort,
            "updated_at": now,
        },
    )
    if updated is None:
        return None
    _emit_update(uow, link, updated)
    return _as_updated(link, updated)


def _as_updated(link: SurveyLink, row: Any) -> SurveyLink:
    return replace(
        link,
        score=row.score,
        comment=row.comment,
        recommended=row.recommended,
        csat=row.csat,
        effort=row.effort,
        revision=row.revision,
    )


def _emit_update(uow: UnitOfWork, link: SurveyLink, row: Any) -> None:
    data = SurveyResponseUpdated(
        response_id=row.id,
        invitation_id=link.invitation_id,
        customer_id=link.customer_id,
        touchpoint=link.touchpoint,
        revision=row.revision,
        score=row.score,
        comment=row.comment,
        recommended=row.recommended,
        csat=row.csat,
        effort=row.effort,
        responded_at=row.responded_at,
        updated_at=row.updated_at,
    )
    uow.emit(
        new_event(
            SURVEY_RESPONSE_UPDATED,
            tenant_id=str(link.tenant_id),
            data=data,
            subject=link.customer_id,
            source=SOURCE,
            event_id=f"{row.id}:{row.revision}",
            time=row.updated_at,
        )
    )


async def _record_step_once(uow: UnitOfWork, link: SurveyLink, stamp: str, step: str, now: datetime) -> bool:
    if await repository.stamp_once(uow.session, link.invitation_id, stamp, now):
        _emit_step(uow, step, link.invitation_id, link, now)
        return True
    return False


#: The ledger of machine opens announced: ``processed_events`` under a name no consumer has, so
#: each invitation's machine open is announced once without a column of its own.
MACHINE_OPENS = "survey.machine-opens"


async def record_opened(uow: UnitOfWork, link: SurveyLink, *, now: datetime, machine: bool) -> bool:
    """The pixel was fetched. A person's first open is stamped (``opened_at``) and announced; a
    machine's (see :mod:`services.survey.domain.opens`) is announced once as ``machine`` and
    stamps nothing, so a person opening the email later still counts. True if anything new was
    recorded."""
    if not link.look.branding.open_tracking:
        return False
    if not machine:
        return await _record_step_once(uow, link, "opened_at", SURVEY_OPENED, now)
    event = _step_event(SURVEY_OPENED, link.invitation_id, link, now, machine=True)
    if not await uow.claim(MACHINE_OPENS, [event]):
        return False
    uow.emit(event)
    return True


async def record_clicked(uow: UnitOfWork, link: SurveyLink, *, now: datetime) -> bool:
    return await _record_step_once(uow, link, "clicked_at", SURVEY_CLICKED, now)


async def unsubscribe(uow: UnitOfWork, link: SurveyLink, *, now: datetime) -> bool:
    """No more surveys to this address from this tenant: suppress it, withdraw what is scheduled,
    and tell the trigger. Repeating it changes nothing. True the first time."""
    if not await _record_step_once(uow, link, "unsubscribed_at", SURVEY_UNSUBSCRIBED, now):
        return False
    await repository.suppress(uow.session, [(link.tenant_id, link.email, "unsubscribed", now)])
    await repository.cancel_scheduled_to(uow.session, [(link.tenant_id, link.email)])
    _emit_hygiene(uow, link.tenant_id, link.customer_id, link.email, "unsubscribed", now)
    return True


async def save_settings(
    uow: UnitOfWork, tenant_id: uuid.UUID, touchpoint: str, config: dict[str, Any], *, now: datetime
) -> None:
    await repository.put_settings(uow.session, tenant_id, touchpoint, config, now)


async def load_settings(uow: UnitOfWork, tenant_id: uuid.UUID, touchpoint: str) -> dict[str, Any] | None:
    return (await repository.settings_for(uow.session, [tenant_id])).get((tenant_id, touchpoint))
