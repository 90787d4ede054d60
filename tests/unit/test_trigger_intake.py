"""Intake, example by example, through the real handler on an in-memory trigger: a new tenant with
the default policy (a rest period of 180 days) and the built-in touchpoints."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from libs.common.events import (
    CUSTOMER_RESUBSCRIBED,
    CUSTOMER_UNSUBSCRIBED,
    ORDER_CANCELLED,
    SURVEY_CANCELLED,
    SURVEY_RESPONDED,
    CustomerResubscribed,
    CustomerUnsubscribed,
    OrderCancelled,
    SurveyCancelled,
    SurveyResponded,
)
from libs.common.kafka import RejectEvent
from services.trigger.handlers.intake import handle_intake_from_kafka, on_survey_events
from tests.support.trigger_fakes import FakeTrigger

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
REST_PERIOD = timedelta(days=180)


@pytest.fixture
def trigger() -> FakeTrigger:
    return FakeTrigger.new_tenant()


def _decisions(trigger: FakeTrigger, event_id: str) -> list[tuple[str, str | None]]:
    return [(d.outcome, d.reason) for d in trigger.repository.decisions if d.event_id == event_id]


async def test_a_purchase_of_a_new_customer_is_invited(trigger: FakeTrigger) -> None:
    [outcome] = await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW)
    assert outcome.as_result()["decision"] == "invited"
    [request] = trigger.requested()
    assert (request.customer_id, request.email, request.touchpoint) == (
        "ann",
        "ann@example.com",
        "webshop-purchase",
    )
    assert trigger.repository.decisions[0].rest_period_days == 180


async def test_a_duplicate_event_id_is_not_decided_twice(trigger: FakeTrigger) -> None:
    event = trigger.purchase("ann", "o-1", at=NOW)
    await trigger.intake([event], NOW)
    [again] = await trigger.intake([event], NOW + timedelta(days=365))
    assert again.as_result() == {"id": event.id, "status": "duplicate"}
    assert _decisions(trigger, event.id) == [("invited", None)]
    assert len(trigger.requested()) == 1


async def test_a_redelivered_order_under_a_new_event_id_is_a_duplicate(trigger: FakeTrigger) -> None:
    await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW)
    later = NOW + REST_PERIOD + timedelta(days=1)
    [outcome] = await trigger.intake([trigger.purchase("ann", "o-1", at=later)], later)
    assert outcome.as_result()["reason"] == "duplicate"
    assert len(trigger.requested()) == 1


async def test_inside_the_rest_period_a_customer_is_not_asked_again(trigger: FakeTrigger) -> None:
    await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW)
    almost = NOW + REST_PERIOD - timedelta(minutes=1)
    [held] = await trigger.intake([trigger.ticket("ann", "t-1", at=almost)], almost)
    assert held.decision is not None
    assert (held.as_result()["reason"], held.decision.rest_until) == ("rest_period", NOW + REST_PERIOD)
    after = NOW + REST_PERIOD
    [asked] = await trigger.intake([trigger.ticket("ann", "t-2", at=after)], after)
    assert asked.as_result()["decision"] == "invited"
    assert [r.trigger_event_type for r in trigger.requested()] == [
        "purchase.completed.v1",
        "ticket.closed.v1",
    ]


async def test_two_purchases_in_one_batch_invite_once(trigger: FakeTrigger) -> None:
    outcomes = await trigger.intake(
        [trigger.purchase("ann", "o-1", at=NOW), trigger.purchase("ann", "o-2", at=NOW)], NOW
    )
    assert [o.as_result().get("reason") for o in outcomes] == [None, "rest_period"]
    assert len(trigger.requested()) == 1


async def test_an_unsubscribed_customer_is_not_invited(trigger: FakeTrigger) -> None:
    unsubscribe = trigger.event(CUSTOMER_UNSUBSCRIBED, CustomerUnsubscribed(customer_id="ann"), at=NOW)
    await trigger.intake([unsubscribe], NOW)
    [outcome] = await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW + timedelta(hours=1))
    assert outcome.as_result()["reason"] == "unsubscribed"
    assert trigger.requested() == []


async def test_an_address_unsubscribed_before_its_customer_is_known_is_never_asked(
    trigger: FakeTrigger,
) -> None:
    unsubscribe = trigger.event(
        CUSTOMER_UNSUBSCRIBED, CustomerUnsubscribed(email="ANN@example.com", reason="complaint"), at=NOW
    )
    await trigger.intake([unsubscribe], NOW)
    [outcome] = await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW + timedelta(hours=1))
    assert outcome.as_result()["reason"] == "unsubscribed"
    assert trigger.requested() == []


async def test_an_unsubscribe_withdraws_the_pending_invitation(trigger: FakeTrigger) -> None:
    await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW)
    [request] = trigger.requested()
    unsubscribe = trigger.event(CUSTOMER_UNSUBSCRIBED, CustomerUnsubscribed(customer_id="ann"), at=NOW)
    [outcome] = await trigger.intake([unsubscribe], NOW + timedelta(minutes=5))
    assert outcome.as_result()["decision"] == "cancelled"
    [cancelled] = [e.data for e in trigger.uow.of_type(SURVEY_CANCELLED)]
    assert isinstance(cancelled, SurveyCancelled)
    assert (cancelled.invitation_id, cancelled.reason) == (request.invitation_id, "unsubscribed")


async def test_a_resubscribed_customer_may_be_asked_again(trigger: FakeTrigger) -> None:
    await trigger.intake(
        [trigger.event(CUSTOMER_UNSUBSCRIBED, CustomerUnsubscribed(customer_id="ann"), at=NOW)], NOW
    )
    later = NOW + timedelta(days=1)
    await trigger.intake(
        [trigger.event(CUSTOMER_RESUBSCRIBED, CustomerResubscribed(customer_id="ann"), at=later)], later
    )
    [outcome] = await trigger.intake([trigger.purchase("ann", "o-1", at=later)], later)
    assert outcome.as_result()["decision"] == "invited"


async def test_an_order_cancelled_before_it_is_decided_is_not_surveyed(trigger: FakeTrigger) -> None:
    cancel = trigger.event(
        ORDER_CANCELLED, OrderCancelled(order_id="o-1", customer_id="ann", reason="refunded"), at=NOW
    )
    await trigger.intake([cancel], NOW)
    [outcome] = await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW + timedelta(minutes=1))
    assert outcome.as_result()["reason"] == "cancelled"
    assert trigger.requested() == []


async def test_the_response_clock_holds_back_while_an_invitation_is_outstanding(trigger: FakeTrigger) -> None:
    await trigger.repository.set_rest_period(trigger.tenant_id, 30, "response")
    await trigger.intake([trigger.purchase("ann", "o-1", at=NOW)], NOW)
    [request] = trigger.requested()
    later = NOW + timedelta(days=60)
    [held] = await trigger.intake([trigger.purchase("ann", "o-2", at=later)], later)
    assert (
        held.decision is not None
        and held.decision.detail == f"invitation {request.invitation_id} is outstanding"
    )
    answered = NOW + timedelta(days=61)
    answer = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=request.invitation_id,
        customer_id="ann",
        email="ann@example.com",
        touchpoint="webshop-purchase",
        score=9,
        responded_at=answered,
    )
    async with trigger.uow as uow:
        await on_survey_events([trigger.event(SURVEY_RESPONDED, answer, at=answered)], uow)
        await uow.commit()
    soon = answered + timedelta(days=29)
    [resting] = await trigger.intake([trigger.purchase("ann", "o-3", at=soon)], soon)
    assert resting.as_result()["reason"] == "rest_period"
    free = answered + timedelta(days=30)
    [asked] = await trigger.intake([trigger.purchase("ann", "o-4", at=free)], free)
    assert asked.as_result()["decision"] == "invited"


def test_events_of_an_unknown_tenant_are_rejected(trigger: FakeTrigger) -> None:
    stranger = FakeTrigger.new_tenant()
    event = stranger.purchase("ann", "o-1", at=NOW)

    async def consume() -> None:
        async with trigger.uow as uow:
            await handle_intake_from_kafka([event], uow, now=NOW, settings=trigger.settings)

    with pytest.raises(RejectEvent, match="unknown tenant"):
        asyncio.run(consume())
    assert trigger.repository.decisions == []
