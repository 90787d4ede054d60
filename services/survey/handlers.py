"""The survey's commands and event handlers. They load state, ask the domain, record the results
and the outgoing events in the unit of work, and return. They never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.events import (
    SURVEY_REQUESTED,
    SURVEY_RESPONDED,
    SURVEY_SENT,
    Contract,
    Event,
    SurveyCancelled,
    SurveyRequested,
    SurveyResponded,
    SurveySent,
    new_event,
)
from libs.common.kafka import RejectEvent
from libs.common.tenancy import TENANCY_HANDLERS
from services.survey import repository
from services.survey.domain.answers import Answer, AnswerState, answer_state
from services.survey.domain.delivery import Failed, InvitationStatus, Outcome, Retry, Sent
from services.survey.domain.tokens import looks_like_token, survey_token, token_hash, token_matches

SOURCE = "/nps/survey"
_SENT_NAMESPACE = uuid.UUID("0d7d6c1e-5b1f-4c7e-9d55-2a3c8e9f4b61")
_RESPONSE_NAMESPACE = uuid.UUID("a4f0b7c2-8e13-4d6a-b5c9-71e2d3f8a046")


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
    for event in events:
        if event.type == SURVEY_REQUESTED:
            assert isinstance(event.data, SurveyRequested)
            requests.append(Event(event.envelope, event.data))
        elif isinstance(event.data, SurveyCancelled):
            cancellations.append((uuid.UUID(event.tenant_id), event.data.invitation_id))
        elif (tenancy := TENANCY_HANDLERS.get(event.type)) is not None:
            await tenancy(event, uow)
    await schedule_invitations(requests, uow, token_secret=token_secret, token_ttl=token_ttl, now=now)
    # After scheduling: a request and its cancellation share a partition, the cancellation second.
    await repository.cancel_scheduled(uow.session, cancellations)


async def schedule_invitations(
    requests: Sequence[Event[SurveyRequested]],
    uow: UnitOfWork,
    *,
    token_secret: str,
    token_ttl: timedelta,
    now: datetime,
) -> None:
    """One invitation per invitation id, ``scheduled`` for the requested time.

    A tenant this service has not heard of yet is no reason to refuse: the tenant events travel on
    another topic and may simply arrive later. The name is looked up when the email is sent.
    """
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


async def claim_due(
    uow: UnitOfWork, *, now: datetime, sending_timeout: timedelta, limit: int
) -> list[ClaimedInvitation]:
    rows = await repository.claim_due(uow.session, now=now, stale_before=now - sending_timeout, limit=limit)
    names = await repository.tenant_names(uow.session, [row.tenant_id for row in rows])
    return [
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
        )
        for row in sorted(rows, key=lambda row: row.send_at)
    ]


async def record_outcomes(uow: UnitOfWork, outcomes: Sequence[tuple[ClaimedInvitation, Outcome]]) -> int:
    """Record a batch's deliveries; ``survey.sent`` for each newly sent one. Returns how many."""
    sent = [(claimed.id, outcome.at) for claimed, outcome in outcomes if isinstance(outcome, Sent)]
    retries = [
        (claimed.id, claimed.attempts, outcome.at, outcome.error)
        for claimed, outcome in outcomes
        if isinstance(outcome, Retry)
    ]
    failures = [
        (claimed.id, claimed.attempts, outcome.error)
        for claimed, outcome in outcomes
        if isinstance(outcome, Failed)
    ]
    newly_sent = await repository.mark_sent(uow.session, sent)
    await repository.reschedule(uow.session, retries)
    await repository.fail(uow.session, failures)
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


# --- Answering ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyLink:
    """The invitation a survey link points at, as the public pages need it."""

    invitation_id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: str
    email: str
    name: str | None
    touchpoint: str
    expires_at: datetime
    responded_at: datetime | None
    tenant_name: str | None

    def state(self, now: datetime) -> AnswerState:
        return answer_state(responded_at=self.responded_at, expires_at=self.expires_at, now=now)


async def find_link(uow: UnitOfWork, token: str) -> SurveyLink | None:
    if not looks_like_token(token):
        return None
    row = await repository.invitation_by_token_hash(uow.session, token_hash(token))
    if row is None or not token_matches(token, row.token_hash):
        return None
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
    )


async def record_answer(uow: UnitOfWork, link: SurveyLink, answer: Answer, *, now: datetime) -> bool:
    """Record the one answer to an invitation and announce it. False if it was answered already
    (also when a concurrent request got there first)."""
    response_id = response_id_for(link.invitation_id)
    recorded = await repository.insert_response(
        uow.session,
        {
            "id": response_id,
            "invitation_id": link.invitation_id,
            "tenant_id": link.tenant_id,
            "customer_id": link.customer_id,
            "touchpoint": link.touchpoint,
            "score": answer.score,
            "comment": answer.comment,
            "responded_at": now,
        },
    )
    if not recorded:
        return False
    await repository.mark_responded(uow.session, link.invitation_id, now)
    data = SurveyResponded(
        response_id=response_id,
        invitation_id=link.invitation_id,
        customer_id=link.customer_id,
        email=link.email,
        name=link.name,
        touchpoint=link.touchpoint,
        score=answer.score,
        comment=answer.comment,
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
    return True
