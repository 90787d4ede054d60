"""The context the trigger puts on ``survey.requested.v1``, through the real intake handler on an
in-memory trigger: the order or ticket, the account and its owner, and the customer's attributes
overlaid by the event's own, whether the customer was upserted in an earlier batch or the same one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from libs.common.events import (
    CUSTOMER_UPSERTED,
    PURCHASE_COMPLETED,
    TICKET_CLOSED,
    CustomerUpserted,
    Money,
    PurchaseCompleted,
    SurveyContext,
    TicketClosed,
)
from tests.support.trigger_fakes import FakeTrigger

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
OWNER = "kam@shop.example"


@pytest.fixture
def trigger() -> FakeTrigger:
    return FakeTrigger.new_tenant()


def upserted(customer_id: str, **fields: object) -> CustomerUpserted:
    return CustomerUpserted.model_validate({"customer_id": customer_id, **fields})


def only_context(trigger: FakeTrigger) -> SurveyContext:
    [request] = trigger.requested()
    assert request.context is not None
    return request.context


async def test_a_purchase_carries_its_order_and_the_customers_owner_and_attributes(
    trigger: FakeTrigger,
) -> None:
    customer = upserted(
        "ann",
        account_id="acct-9",
        account_owner_email=OWNER,
        attributes={"country": "DK", "store": "aarhus"},
    )
    await trigger.intake([trigger.event(CUSTOMER_UPSERTED, customer, at=NOW)], NOW)
    order = PurchaseCompleted(
        order_id="o-1",
        customer_id="ann",
        email="ann@example.com",
        amount=Decimal("49.90"),
        currency="DKK",
        attributes={"store": "copenhagen", "product_category": "shoes"},
    )
    await trigger.intake([trigger.event(PURCHASE_COMPLETED, order, at=NOW)], NOW)
    assert only_context(trigger) == SurveyContext(
        order_id="o-1",
        amount=Decimal("49.90"),
        currency="DKK",
        account_id="acct-9",
        account_owner_email=OWNER,
        attributes={"store": "copenhagen", "product_category": "shoes", "country": "DK"},
        spend_12m=[Money(amount_minor=4990, currency="DKK")],
    )
    # The order's attributes are the order's: the customer's stored ones are unchanged.
    stored = trigger.repository.customers[(trigger.tenant_id, "ann")]
    assert stored.attributes == {"country": "DK", "store": "aarhus"}


async def test_an_upsert_earlier_in_the_same_batch_counts(trigger: FakeTrigger) -> None:
    customer = upserted("bob", account_owner_email=OWNER, attributes={"segment": "vip"})
    ticket = TicketClosed(ticket_id="t-7", customer_id="bob", email="bob@example.com")
    await trigger.intake(
        [
            trigger.event(CUSTOMER_UPSERTED, customer, at=NOW),
            trigger.event(TICKET_CLOSED, ticket, at=NOW),
        ],
        NOW,
    )
    assert only_context(trigger) == SurveyContext(
        ticket_id="t-7", account_owner_email=OWNER, attributes={"segment": "vip"}
    )


async def test_an_upsert_that_leaves_them_out_keeps_the_owner_and_attributes(trigger: FakeTrigger) -> None:
    first = upserted("cy", account_owner_email=OWNER, attributes={"country": "SE"}, locale="sv-SE")
    await trigger.intake([trigger.event(CUSTOMER_UPSERTED, first, at=NOW)], NOW)
    later = NOW + timedelta(hours=1)
    renamed = upserted("cy", name="Cy Young")
    await trigger.intake([trigger.event(CUSTOMER_UPSERTED, renamed, at=later)], later)
    stored = trigger.repository.customers[(trigger.tenant_id, "cy")]
    assert (stored.account_owner_email, stored.attributes, stored.name) == (
        OWNER,
        {"country": "SE"},
        "Cy Young",
    )
    await trigger.intake([trigger.purchase("cy", "o-2", at=later)], later)
    context = only_context(trigger)
    assert (context.account_owner_email, context.attributes) == (OWNER, {"country": "SE"})
    # The language the customer is asked in travels too: scoring segments answers by it.
    assert context.locale == "sv-SE"


async def test_a_purchase_for_another_account_does_not_go_to_the_owner(trigger: FakeTrigger) -> None:
    customer = upserted("dee", account_id="acct-1", account_owner_email=OWNER)
    await trigger.intake([trigger.event(CUSTOMER_UPSERTED, customer, at=NOW)], NOW)
    order = PurchaseCompleted(order_id="o-3", customer_id="dee", email="dee@example.com", account_id="acct-2")
    await trigger.intake([trigger.event(PURCHASE_COMPLETED, order, at=NOW)], NOW)
    context = only_context(trigger)
    assert (context.account_id, context.account_owner_email) == ("acct-2", None)


async def test_a_customer_nobody_upserted_gets_the_bare_order(trigger: FakeTrigger) -> None:
    await trigger.intake([trigger.purchase("eve", "o-4", at=NOW)], NOW)
    assert only_context(trigger) == SurveyContext(order_id="o-4")
