"""The survey's side of an erasure racing a purchase: a survey request the trigger made before the
customer's erasure, overtaken by it (the request and the erasure travel on different topics), is
not scheduled; one made after it is new and is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

from libs.common.db import UnitOfWork
from libs.common.erasure import customer_key
from libs.common.events import SURVEY_REQUESTED, Contract, Event, SurveyRequested, new_event
from services.survey.handlers import handle_consumed
from services.survey.repository import NewInvitation, SurveyRepository
from tests.support.fakes import FakeUnitOfWork

ERASED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TENANT = uuid.UUID("3b0d3f6e-8f0a-4e55-9d8b-6a1f4c2e7d10")
KEY = "erasure-key"


class Invitations:
    """The queries the consumer makes, in memory; ``c-erased`` was erased at :data:`ERASED_AT`."""

    def __init__(self) -> None:
        self.inserted: list[NewInvitation] = []
        self.erased = {customer_key(KEY, TENANT, "c-erased"): ERASED_AT}

    async def insert_invitations(self, invitations: list[NewInvitation]) -> None:
        self.inserted.extend(invitations)

    async def lift_suppressions(self, lifted: list[tuple[uuid.UUID, str]]) -> None:
        return None

    async def cancel_scheduled(self, cancellations: list[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> None:
        return None

    async def erased_since(self, tenant_id: uuid.UUID, keys: list[str]) -> dict[str, datetime]:
        return {key: at for key, at in self.erased.items() if tenant_id == TENANT and key in keys}


def request(customer: str, made_at: datetime) -> Event[Contract]:
    return new_event(
        SURVEY_REQUESTED,
        tenant_id=str(TENANT),
        source="/nps/trigger",
        subject=customer,
        time=made_at,
        data=SurveyRequested(
            invitation_id=uuid.uuid4(),
            customer_id=customer,
            email=f"{customer}@example.com",
            touchpoint="webshop-purchase",
            trigger_event_id=uuid.uuid4().hex,
            trigger_event_type="purchase.completed.v1",
            send_at=made_at,
        ),
    )


async def scheduled(*events: Event[Contract]) -> list[str]:
    repository = Invitations()
    uow = cast("UnitOfWork[SurveyRepository]", FakeUnitOfWork(repository))
    await handle_consumed(
        list(events),
        uow,
        token_secret="s" * 32,
        token_ttl=timedelta(days=30),
        now=ERASED_AT + timedelta(minutes=10),
        erasure_key=KEY,
    )
    return [invitation.customer_id for invitation in repository.inserted]


async def test_a_request_made_before_the_erasure_is_not_scheduled() -> None:
    assert await scheduled(request("c-erased", ERASED_AT - timedelta(seconds=1))) == []


async def test_a_request_made_after_the_erasure_is_scheduled() -> None:
    assert await scheduled(request("c-erased", ERASED_AT + timedelta(seconds=1))) == ["c-erased"]


async def test_other_customers_are_scheduled() -> None:
    assert await scheduled(request("c-other", ERASED_AT - timedelta(days=1))) == ["c-other"]
