"""What an erasure means for events that race it, through the real intake handler on an in-memory
trigger: an event about the customer from before the erasure that arrives after it (a webhook retry,
a replay, a request overtaken on another topic) is not taken in again; one from after it is new data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from libs.common.erasure import ERASED_EMAIL, customer_key, redact_payload
from libs.common.events import (
    CUSTOMER_ERASED,
    SURVEY_RESPONDED,
    CustomerErased,
    SurveyResponded,
    decode_structured,
)
from services.trigger.handlers.erasure import COMPLETED, PENDING
from services.trigger.models import Erasure
from tests.support.trigger_fakes import FakeTrigger

ERASED_AT = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def _erased(trigger: FakeTrigger, customer_id: str) -> None:
    secret = trigger.settings.privacy_hash_key.get_secret_value()
    trigger.repository.erasures.append(
        Erasure(
            id=uuid.uuid4(),
            tenant_id=trigger.tenant_id,
            customer_key=customer_key(secret, trigger.tenant_id, customer_id),
            requested_at=ERASED_AT,
            received_at=ERASED_AT,
            origin="api",
            services={"trigger": {"status": COMPLETED}, "survey": {"status": PENDING}},
        )
    )


async def test_a_purchase_from_before_the_erasure_arriving_after_it_is_not_taken_in() -> None:
    trigger = FakeTrigger.new_tenant()
    _erased(trigger, "ann")
    late = trigger.purchase("ann", "o-1", at=ERASED_AT - timedelta(minutes=1))
    [outcome] = await trigger.intake([late], ERASED_AT + timedelta(minutes=5))
    assert outcome.as_result() | {"id": None} == {
        "id": None,
        "status": "accepted",
        "decision": "skipped",
        "reason": "erased",
    }
    # Nothing of it is kept: no customer, no decision, no survey request.
    assert trigger.repository.customers == {}
    assert trigger.repository.decisions == []
    assert trigger.requested() == []


async def test_a_purchase_after_the_erasure_is_new_data_and_is_decided() -> None:
    trigger = FakeTrigger.new_tenant()
    _erased(trigger, "ann")
    new = trigger.purchase("ann", "o-2", at=ERASED_AT + timedelta(minutes=1))
    [outcome] = await trigger.intake([new], ERASED_AT + timedelta(minutes=5))
    assert outcome.as_result()["decision"] == "invited"
    [request] = trigger.requested()
    assert (request.customer_id, request.email) == ("ann", "ann@example.com")


async def test_another_customer_is_not_held_back_by_an_erasure() -> None:
    trigger = FakeTrigger.new_tenant()
    _erased(trigger, "ann")
    [outcome] = await trigger.intake(
        [trigger.purchase("bob", "o-3", at=ERASED_AT - timedelta(days=1))], ERASED_AT
    )
    assert outcome.as_result()["decision"] == "invited"


def test_a_redacted_event_keeps_its_shape_and_loses_the_customers_words() -> None:
    trigger = FakeTrigger.new_tenant()
    answer = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id="ann",
        email="ann@example.com",
        name="Ann Example",
        touchpoint="webshop-purchase",
        score=3,
        comment="The parcel came a week late.",
        responded_at=ERASED_AT,
    )
    payload = trigger.event(SURVEY_RESPONDED, answer, at=ERASED_AT).envelope.to_json()
    redacted = redact_payload(payload)
    for personal in (b"ann@example.com", b"Ann Example", b"parcel"):
        assert personal not in redacted
    # Still a valid event, should the relay publish it after the erasure.
    event = decode_structured(redacted)
    assert isinstance(event.data, SurveyResponded)
    assert (event.data.email, event.data.score, event.data.comment) == (ERASED_EMAIL, 3, None)


def test_customer_erased_is_an_intake_type() -> None:
    trigger = FakeTrigger.new_tenant()
    event = trigger.event(CUSTOMER_ERASED, CustomerErased(customer_id="ann"), at=ERASED_AT)
    assert decode_structured(event.envelope.to_json()).type == CUSTOMER_ERASED
