"""The survey context's contracts: routing attributes are few, short and plain (hostile input is
refused, naming the bad key), every new field is optional so events from before still validate,
and the context round-trips from request to answer. And the trigger's rule for merging the
customer's attributes with the event's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import (
    CUSTOMER_UPSERTED,
    MAX_ATTRIBUTES,
    PURCHASE_COMPLETED,
    SURVEY_REQUESTED,
    SURVEY_RESPONDED,
    TICKET_CLOSED,
    CustomerUpserted,
    InvalidEvent,
    PurchaseCompleted,
    SurveyContext,
    SurveyRequested,
    SurveyResponded,
    validate,
)
from services.trigger.domain.context import CustomerProfile, account_owner, merged_attributes

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TENANT = "3b0d3f6e-8f0a-4e55-9d8b-6a1f4c2e7d10"


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "e-1", "source": "/shop", "type": event_type, "tenantid": TENANT} | {
        "data": data
    }


def refusal(event_type: str, data: dict[str, Any]) -> str:
    with pytest.raises(InvalidEvent) as refused:
        validate(envelope(event_type, data))
    return refused.value.reason


PURCHASE = {"order_id": "1001", "customer_id": "c-1"}


def test_attributes_are_taken_on_purchases_tickets_and_customers() -> None:
    shoes = {"country": "DK", "store": "copenhagen", "product_category": "shoes"}
    for event_type, data in [
        (PURCHASE_COMPLETED, PURCHASE),
        (TICKET_CLOSED, {"ticket_id": "T-1", "customer_id": "c-1"}),
        (CUSTOMER_UPSERTED, {"customer_id": "c-1", "account_owner_email": "kam@shop.example"}),
    ]:
        event = validate(envelope(event_type, data | {"attributes": shoes}))
        assert event.data.attributes == shoes  # type: ignore[attr-defined]
    twenty = {f"k{i}": "v" for i in range(MAX_ATTRIBUTES)}
    assert validate(envelope(PURCHASE_COMPLETED, PURCHASE | {"attributes": twenty}))


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ({f"k{i}": "v" for i in range(MAX_ATTRIBUTES + 1)}, "at most 20 attributes, not 21"),
        ({"Country": "DK"}, "'Country'"),
        ({"9lives": "x"}, "'9lives'"),
        ({"store-name": "x"}, "'store-name'"),
        ({"k" * 41: "x"}, "'" + "k" * 41 + "'"),
        ({"": "x"}, "''"),
        ({"store": "x" * 201}, "'store': a value is 1 to 200 characters"),
        ({"store": ""}, "'store': a value is 1 to 200 characters"),
        ({"store": "copen\nhagen"}, "'store': a value must not contain control characters"),
        ({"store": "copen\x1bhagen"}, "'store': a value must not contain control characters"),
        ({"store": 42}, "data.attributes.store"),
        ({"store": {"nested": "x"}}, "data.attributes.store"),
    ],
)
def test_hostile_attributes_are_refused_naming_the_bad_key(attributes: dict[str, Any], named: str) -> None:
    reason = refusal(PURCHASE_COMPLETED, PURCHASE | {"attributes": attributes})
    assert reason.startswith("data.attributes"), reason
    assert named in reason


def test_a_nul_in_an_attribute_value_is_refused_naming_it() -> None:
    reason = refusal(PURCHASE_COMPLETED, PURCHASE | {"attributes": {"store": "a\x00b"}})
    assert reason.startswith("data.attributes.store"), reason
    with pytest.raises(ValueError, match="'store': a value must not contain control characters"):
        PurchaseCompleted(order_id="1", customer_id="c", attributes={"store": "a\x00b"})


def test_an_owner_that_is_not_an_address_is_refused() -> None:
    reason = refusal(CUSTOMER_UPSERTED, {"customer_id": "c-1", "account_owner_email": "kam"})
    assert reason.startswith("data.account_owner_email")


def _request(**extra: Any) -> dict[str, Any]:
    return {
        "invitation_id": str(uuid.uuid4()),
        "customer_id": "c-1",
        "email": "jane@example.com",
        "touchpoint": "webshop-purchase",
        "trigger_event_id": "e-1",
        "trigger_event_type": PURCHASE_COMPLETED,
        "send_at": NOW.isoformat(),
    } | extra


def test_events_from_before_the_context_still_validate() -> None:
    assert validate(envelope(PURCHASE_COMPLETED, PURCHASE)).data.attributes is None  # type: ignore[attr-defined]
    upserted = validate(envelope(CUSTOMER_UPSERTED, {"customer_id": "c-1"})).data
    assert isinstance(upserted, CustomerUpserted)
    assert (upserted.attributes, upserted.account_owner_email) == (None, None)
    request = validate(envelope(SURVEY_REQUESTED, _request())).data
    assert isinstance(request, SurveyRequested) and request.context is None
    # And without a context, the request's JSON is what it was.
    assert "context" not in request.event(tenant_id=TENANT, subject="c-1", source="/t").envelope.data


def test_the_context_round_trips_from_request_to_answer() -> None:
    context = {
        "order_id": "1001",
        "amount": "49.90",
        "currency": "DKK",
        "account_id": "acct-9",
        "account_owner_email": "kam@shop.example",
        "attributes": {"country": "DK"},
        "purpose": "survey",
    }
    request = validate(envelope(SURVEY_REQUESTED, _request(context=context))).data
    assert isinstance(request, SurveyRequested) and request.context is not None
    assert request.context.amount == Decimal("49.90")
    sent = request.event(tenant_id=TENANT, subject="c-1", source="/t").envelope.data
    assert sent["context"] == context
    answer = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=request.invitation_id,
        customer_id="c-1",
        email="jane@example.com",
        touchpoint="webshop-purchase",
        score=3,
        responded_at=NOW,
        context=request.context,
    )
    again = validate(envelope(SURVEY_RESPONDED, answer.model_dump(mode="json", exclude_none=True))).data
    assert again == answer
    recovery = SurveyContext(purpose="recovery", recovery_case_id=uuid.uuid4())
    assert SurveyContext.model_validate(recovery.model_dump(mode="json")) == recovery


@pytest.mark.parametrize(
    "context",
    [
        {"order_id": "1", "colour": "red"},
        {"amount": "-1"},
        {"currency": "dkk"},
        {"purpose": "upsell"},
        {"attributes": {"Bad": "x"}},
    ],
)
def test_a_context_that_breaks_its_contract_is_refused(context: dict[str, Any]) -> None:
    assert refusal(SURVEY_REQUESTED, _request(context=context)).startswith("data.context.")


# --- The trigger's merge rule --------------------------------------------------------------------

_keys = st.from_regex(r"^[a-z][a-z0-9_]{0,8}$", fullmatch=True)
_attributes = st.dictionaries(_keys, st.text("abc", min_size=1, max_size=3), max_size=MAX_ATTRIBUTES)


def test_the_events_attributes_win_over_the_customers() -> None:
    customer = {"country": "DK", "store": "aarhus", "segment": "vip"}
    own = {"store": "copenhagen", "product_category": "shoes"}
    assert merged_attributes(customer, own) == {
        "store": "copenhagen",
        "product_category": "shoes",
        "country": "DK",
        "segment": "vip",
    }
    assert merged_attributes(customer, None) == customer
    assert merged_attributes({}, None) == {}


@given(customer=_attributes, own=_attributes)
def test_merged_attributes_keep_every_own_value_and_stay_inside_the_contract(
    customer: dict[str, str], own: dict[str, str]
) -> None:
    merged = merged_attributes(customer, own)
    assert len(merged) <= MAX_ATTRIBUTES
    assert own.items() <= merged.items()
    assert all(customer[key] == value for key, value in merged.items() if key not in own)
    assert len(merged) == min(MAX_ATTRIBUTES, len(own.keys() | customer.keys()))
    SurveyContext(attributes=merged)


def test_the_owner_goes_with_the_account_it_was_given_for() -> None:
    profile = CustomerProfile("acct-9", "kam@shop.example")
    assert account_owner(profile, None) == "kam@shop.example"
    assert account_owner(profile, "acct-9") == "kam@shop.example"
    assert account_owner(profile, "acct-other") is None
    assert account_owner(CustomerProfile(None, "kam@shop.example"), "acct-1") == "kam@shop.example"
    assert account_owner(CustomerProfile(), None) is None
