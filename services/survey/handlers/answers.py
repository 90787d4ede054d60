"""Answering: what a survey link points at, and what its pages record (the score, the follow-up
answers, the funnel's opens and clicks, an unsubscribe), plus the tenant's survey settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from libs.common import tracing
from libs.common.db import UnitOfWork
from libs.common.events import (
    SurveyClicked,
    SurveyContext,
    SurveyOpened,
    SurveyResponded,
    SurveyResponseUpdated,
    SurveyStep,
    SurveyUnsubscribed,
)
from services.survey.domain.answers import AnswerState, FollowUp, answer_state, may_change_score
from services.survey.domain.languages import choose_language
from services.survey.domain.tokens import looks_like_token, token_hash, token_matches
from services.survey.handlers.emitting import emit_hygiene, emit_step, step_event
from services.survey.handlers.sending import SurveyLook, look_for, questions_in
from services.survey.models import Response
from services.survey.rendering import Questions
from services.survey.repository import ResponseVersion, Stamp, SurveyRepository

_RESPONSE_NAMESPACE = uuid.UUID("a4f0b7c2-8e13-4d6a-b5c9-71e2d3f8a046")


def response_id_for(invitation_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_RESPONSE_NAMESPACE, str(invitation_id))


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
    #: What the survey is about, from its request; the answer's events carry it on.
    context: SurveyContext | None = None
    #: The request's trace context: the answer continues the purchase's trace.
    trace_context: dict[str, str] | None = None

    def state(self, now: datetime) -> AnswerState:
        return answer_state(responded_at=self.responded_at, expires_at=self.expires_at, now=now)

    @property
    def questions(self) -> Questions:
        return questions_in(self.look, self.language)

    @property
    def last_emailed_at(self) -> datetime | None:
        """When the latest email with this link went out: the invitation, or its reminder."""
        return max((at for at in (self.sent_at, self.reminded_at) if at is not None), default=None)


async def find_link(uow: UnitOfWork[SurveyRepository], token: str) -> SurveyLink | None:
    if not looks_like_token(token):
        return None
    row = await uow.repository.invitation_by_token_hash(token_hash(token))
    if row is None or not token_matches(token, row.token_hash):
        return None
    configs = await uow.repository.settings_for([row.tenant_id])
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
        context=SurveyContext.model_validate(row.context) if row.context is not None else None,
        trace_context=row.trace_context,
    )


ScoreResult = Literal["recorded", "replaced", "unchanged", "final"]


async def record_score(
    uow: UnitOfWork[SurveyRepository], link: SurveyLink, score: int, *, now: datetime, grace: timedelta
) -> tuple[ScoreResult, SurveyLink]:
    """The score counts as soon as it is confirmed (``survey.responded``). A different score inside
    the grace period replaces it (``survey.response_updated``); after that the answer is final.
    Returns what happened and the link as it now stands."""
    response_id = response_id_for(link.invitation_id)
    if link.responded_at is None:
        recorded = await uow.repository.insert_response(
            Response(
                id=response_id,
                invitation_id=link.invitation_id,
                tenant_id=link.tenant_id,
                customer_id=link.customer_id,
                touchpoint=link.touchpoint,
                score=score,
                comment=None,
                responded_at=now,
            )
        )
        if not recorded:
            return "final", link  # a concurrent first answer won; the person sees the answered page
        await uow.repository.mark_responded(link.invitation_id, now)
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
            context=link.context,
        )
        # The person's browser sends no trace context: the answer continues the invitation's trace,
        # linked to the request it came in.
        request_link = tracing.link_to(tracing.carrier())
        with tracing.span(
            "survey answer",
            parent=link.trace_context,
            links=[request_link] if request_link else [],
            attributes={"nps.tenant_id": str(link.tenant_id), "nps.touchpoint": link.touchpoint},
        ):
            uow.emit(
                data, tenant_id=link.tenant_id, subject=link.customer_id, event_id=str(response_id), time=now
            )
        return "recorded", replace(link, responded_at=now, score=score, revision=1)
    if not may_change_score(responded_at=link.responded_at, now=now, grace=grace):
        return "final", link
    if score == link.score:
        return "unchanged", link
    updated = await uow.repository.replace_score(
        link.invitation_id, revision=link.revision, score=score, at=now
    )
    if updated is None:
        return "final", link
    _emit_update(uow, link, updated)
    return "replaced", _as_updated(link, updated)


async def record_follow_up(
    uow: UnitOfWork[SurveyRepository], link: SurveyLink, answers: FollowUp, *, now: datetime
) -> SurveyLink | None:
    """The answers after the score update the response (``survey.response_updated``). Returns the
    link as it now stands; ``None`` if there is no score yet, or a concurrent change won."""
    if link.responded_at is None:
        return None
    updated = await uow.repository.record_follow_up(
        link.invitation_id, revision=link.revision, follow_up=answers, at=now
    )
    if updated is None:
        return None
    _emit_update(uow, link, updated)
    return _as_updated(link, updated)


def _as_updated(link: SurveyLink, row: ResponseVersion) -> SurveyLink:
    return replace(
        link,
        score=row.score,
        comment=row.comment,
        recommended=row.recommended,
        csat=row.csat,
        effort=row.effort,
        revision=row.revision,
    )


def _emit_update(uow: UnitOfWork[SurveyRepository], link: SurveyLink, row: ResponseVersion) -> None:
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
        context=link.context,
    )
    uow.emit(
        data,
        tenant_id=link.tenant_id,
        subject=link.customer_id,
        event_id=f"{row.id}:{row.revision}",
        time=row.updated_at,
    )


async def _record_step_once(
    uow: UnitOfWork[SurveyRepository], link: SurveyLink, stamp: Stamp, step: type[SurveyStep], now: datetime
) -> bool:
    if await uow.repository.stamp_once(link.invitation_id, stamp, now):
        emit_step(uow, step, link.invitation_id, link, now)
        return True
    return False


#: The ledger of machine opens announced: ``processed_events`` under a name no consumer has, so
#: each invitation's machine open is announced once without a column of its own.
MACHINE_OPENS = "survey.machine-opens"


async def record_opened(
    uow: UnitOfWork[SurveyRepository], link: SurveyLink, *, now: datetime, machine: bool
) -> bool:
    """The pixel was fetched. A person's first open is stamped (``opened_at``) and announced; a
    machine's (see :mod:`services.survey.domain.opens`) is announced once as ``machine`` and
    stamps nothing, so a person opening the email later still counts. True if anything new was
    recorded."""
    if not link.look.branding.open_tracking:
        return False
    if not machine:
        return await _record_step_once(uow, link, "opened_at", SurveyOpened, now)
    event = step_event(uow, SurveyOpened, link.invitation_id, link, now, machine=True)
    if not await uow.claim(MACHINE_OPENS, [event]):
        return False
    uow.emit(event)
    return True


async def record_clicked(uow: UnitOfWork[SurveyRepository], link: SurveyLink, *, now: datetime) -> bool:
    return await _record_step_once(uow, link, "clicked_at", SurveyClicked, now)


async def unsubscribe(uow: UnitOfWork[SurveyRepository], link: SurveyLink, *, now: datetime) -> bool:
    """No more surveys to this address from this tenant: suppress it, withdraw what is scheduled,
    and tell the trigger. Repeating it changes nothing. True the first time."""
    if not await _record_step_once(uow, link, "unsubscribed_at", SurveyUnsubscribed, now):
        return False
    await uow.repository.suppress([(link.tenant_id, link.email, "unsubscribed", now)])
    await uow.repository.cancel_scheduled_to([(link.tenant_id, link.email)])
    emit_hygiene(uow, link.tenant_id, link.customer_id, link.email, "unsubscribed", now)
    return True


async def save_settings(
    uow: UnitOfWork[SurveyRepository],
    tenant_id: uuid.UUID,
    touchpoint: str,
    config: dict[str, object],
    *,
    now: datetime,
) -> None:
    await uow.repository.put_settings(tenant_id, touchpoint, config, now)


async def load_settings(
    uow: UnitOfWork[SurveyRepository], tenant_id: uuid.UUID, touchpoint: str
) -> dict[str, object] | None:
    return (await uow.repository.settings_for([tenant_id])).get((tenant_id, touchpoint))
