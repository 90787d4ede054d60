"""Consuming the trigger's survey requests and the tenancy events: invitations are scheduled."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from libs.common import tracing
from libs.common.db import UnitOfWork
from libs.common.erasure import customer_key
from libs.common.events import (
    SURVEY_REQUESTED,
    Contract,
    Event,
    SuppressionLifted,
    SurveyCancelled,
    SurveyRequested,
)
from libs.common.tenancy import TENANCY_HANDLERS
from services.survey.domain.tokens import survey_token, token_hash
from services.survey.repository import NewInvitation, SurveyRepository

#: The job that sends the invitations (services/survey/sender.py): woken when one is due at once.
SENDER_JOB = "survey-sender"


async def handle_consumed(
    events: list[Event[Contract]],
    uow: UnitOfWork[SurveyRepository],
    *,
    token_secret: str,
    token_ttl: timedelta,
    now: datetime,
    erasure_key: str | None = None,
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
            cancellations.append((event.tenant, event.data.invitation_id))
        elif isinstance(event.data, SuppressionLifted):
            lifted.append((event.tenant, event.data.email))
        elif (tenancy := TENANCY_HANDLERS.get(event.type)) is not None:
            await tenancy(event, uow)
    # A re-subscribe comes before the invitations decided after it (one partition per customer).
    await uow.repository.lift_suppressions(lifted)
    await schedule_invitations(
        requests, uow, token_secret=token_secret, token_ttl=token_ttl, now=now, erasure_key=erasure_key
    )
    # After scheduling: a request and its cancellation share a partition, the cancellation second.
    await uow.repository.cancel_scheduled(cancellations, now)


async def schedule_invitations(
    requests: Sequence[Event[SurveyRequested]],
    uow: UnitOfWork[SurveyRepository],
    *,
    token_secret: str,
    token_ttl: timedelta,
    now: datetime,
    erasure_key: str | None = None,
) -> None:
    """One invitation per invitation id, ``scheduled`` for the requested time. (Requests of a
    tenant this service has not heard of yet never get here: the consumer holds them until the
    tenant's own event arrives, see ``libs.common.kafka``.)

    With ``erasure_key``: a request the trigger made before its customer's erasure is dropped: it
    was on its way when the erasure overtook it (another topic), and scheduling it would email
    somebody who asked to be forgotten. A request made after the erasure is new and is kept."""
    if erasure_key is not None:
        requests = await _not_erased(requests, uow, erasure_key, now)
    invitations: dict[uuid.UUID, NewInvitation] = {}
    for request in requests:
        data = request.data
        if data.invitation_id in invitations:
            continue
        invitations[data.invitation_id] = NewInvitation(
            id=data.invitation_id,
            tenant_id=request.tenant,
            customer_id=data.customer_id,
            email=data.email,
            name=data.name,
            locale=data.locale,
            touchpoint=data.touchpoint,
            trigger_event_id=data.trigger_event_id,
            token_hash=token_hash(survey_token(token_secret, data.invitation_id)),
            send_at=data.send_at,
            expires_at=data.send_at + token_ttl,
            created_at=now,
            context=data.context.model_dump(mode="json", exclude_none=True) if data.context else None,
            trace_context=tracing.carrier_of(request.envelope),
        )
    await uow.repository.insert_invitations(list(invitations.values()))
    if any(invitation.send_at <= now for invitation in invitations.values()):
        # Without this the email waits for the sender's next poll (send_poll_seconds).
        uow.wake(SENDER_JOB)


async def _not_erased(
    requests: Sequence[Event[SurveyRequested]], uow: UnitOfWork[SurveyRepository], key: str, now: datetime
) -> list[Event[SurveyRequested]]:
    kept: list[Event[SurveyRequested]] = []
    by_tenant: dict[uuid.UUID, list[Event[SurveyRequested]]] = {}
    for request in requests:
        by_tenant.setdefault(request.tenant, []).append(request)
    for tenant, tenant_requests in by_tenant.items():
        keys = {id(r): customer_key(key, tenant, r.data.customer_id) for r in tenant_requests}
        erased = await uow.repository.erased_since(tenant, list(keys.values()))
        for request in tenant_requests:
            erased_at = erased.get(keys[id(request)])
            made_at = request.envelope.time or now
            if erased_at is None or made_at > erased_at:
                kept.append(request)
    return kept
