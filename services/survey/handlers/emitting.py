"""The funnel-step and address-hygiene events that several of the survey's handlers record. Their
ids are derived, so a repeated step or suppression is deduplicated downstream."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Protocol

from libs.common.db import UnitOfWork
from libs.common.events import Contract, CustomerUnsubscribed, Event, SurveyStep
from services.survey.repository import SurveyRepository

STEP_NAMESPACE = uuid.UUID("5c0f3b7e-1a2d-4e8f-9b6c-3d4e5f607182")


class Invited(Protocol):
    """Whose invitation a funnel step is about: an invitation row, a claimed one or a link."""

    @property
    def tenant_id(self) -> uuid.UUID: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def touchpoint(self) -> str: ...


def emit_step(
    uow: UnitOfWork[SurveyRepository],
    step: type[SurveyStep],
    invitation_id: uuid.UUID,
    of: Invited,
    at: datetime,
) -> None:
    """One event per invitation and step: the id is derived, so repeats are deduplicated downstream."""
    uow.emit(step_event(uow, step, invitation_id, of, at))


def step_event(
    uow: UnitOfWork,
    step: type[SurveyStep],
    invitation_id: uuid.UUID,
    of: Invited,
    at: datetime,
    *,
    machine: bool = False,
) -> Event[Contract]:
    data = step(
        invitation_id=invitation_id,
        customer_id=of.customer_id,
        touchpoint=of.touchpoint,
        at=at,
        machine=machine,
    )
    marker = "machine:" if machine else ""
    return uow.event_of(
        data,
        tenant_id=of.tenant_id,
        subject=of.customer_id,
        event_id=str(uuid.uuid5(STEP_NAMESPACE, f"{step.event_type}:{marker}{invitation_id}")),
        time=at,
    )


def emit_hygiene(
    uow: UnitOfWork[SurveyRepository],
    tenant_id: uuid.UUID,
    customer_id: str,
    email: str,
    reason: Literal["unsubscribed", "hard_bounce", "complaint"],
    at: datetime,
) -> None:
    """Tell the trigger never to ask this address again (until a re-subscribe)."""
    uow.emit(
        CustomerUnsubscribed(customer_id=customer_id, email=email, reason=reason, occurred_at=at),
        tenant_id=tenant_id,
        subject=customer_id,
        event_id=str(uuid.uuid5(STEP_NAMESPACE, f"{reason}:{tenant_id}:{email.lower()}")),
        time=at,
    )
