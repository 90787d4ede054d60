"""Consuming survey requests: an invitation due now wakes the sender once the batch commits, so
its email does not wait for the sender's next poll; one due later leaves the sender to its clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

from libs.common.db import UnitOfWork
from libs.common.events import SURVEY_REQUESTED, Contract, Event, SurveyRequested, new_event
from services.survey.handlers import SENDER_JOB, handle_consumed
from services.survey.repository import NewInvitation, SurveyRepository
from services.survey.sender import SenderJob
from tests.support.fakes import FakeUnitOfWork

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TENANT = "3b0d3f6e-8f0a-4e55-9d8b-6a1f4c2e7d10"


class Invitations:
    def __init__(self) -> None:
        self.inserted: list[NewInvitation] = []

    async def insert_invitations(self, invitations: list[NewInvitation]) -> None:
        self.inserted.extend(invitations)

    async def lift_suppressions(self, lifted: list[tuple[uuid.UUID, str]]) -> None:
        return None

    async def cancel_scheduled(self, cancellations: list[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> None:
        return None


def request(send_at: datetime) -> Event[Contract]:
    return new_event(
        SURVEY_REQUESTED,
        tenant_id=TENANT,
        source="/nps/trigger",
        subject="c-1",
        data=SurveyRequested(
            invitation_id=uuid.uuid4(),
            customer_id="c-1",
            email="jane@example.com",
            touchpoint="webshop-purchase",
            trigger_event_id="order-1",
            trigger_event_type="purchase.completed.v1",
            send_at=send_at,
        ),
    )


async def consume(*events: Event[Contract]) -> tuple[Invitations, FakeUnitOfWork[Invitations]]:
    repository = Invitations()
    uow = FakeUnitOfWork(repository)
    # The three queries handle_consumed makes, in memory: a stand-in for the SurveyRepository.
    survey_uow = cast("UnitOfWork[SurveyRepository]", uow)
    await handle_consumed(
        list(events), survey_uow, token_secret="s" * 32, token_ttl=timedelta(days=30), now=NOW
    )
    return repository, uow


async def test_an_invitation_due_now_wakes_the_sender() -> None:
    repository, uow = await consume(request(NOW - timedelta(seconds=1)), request(NOW + timedelta(days=1)))
    assert len(repository.inserted) == 2
    assert uow.woken == {SENDER_JOB} == {SenderJob.name}


async def test_invitations_due_later_leave_the_sender_to_its_clock() -> None:
    repository, uow = await consume(request(NOW + timedelta(minutes=30)))
    assert len(repository.inserted) == 1
    assert uow.woken == set()
