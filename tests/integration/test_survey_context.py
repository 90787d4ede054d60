"""The survey context along the chain, against real Postgres, Kafka and SMTP: a customer upserted
with attributes and an account owner, then a purchase with attributes of its own, gives a
``survey.requested.v1`` whose context names the order and the owner, with the order's attributes
over the customer's; the survey keeps it, and the customer's answer (``survey.responded.v1``) and
its change (``survey.response_updated.v1``) carry it on."""

from __future__ import annotations

import json
import uuid
from typing import Any

from libs.common import topics
from libs.common.events import CUSTOMER_UPSERTED, SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED
from services.survey.domain.tokens import survey_token
from tests.conftest import Mailbox, ServiceUnderTest, StartService, TestTenant, read_topic
from tests.integration.test_survey_flow import SECRET, email_to, invitation_in, is_event, survey_service
from tests.integration.test_trigger_intake import is_request_for
from tests.support.factories import cloud_event, purchase
from tests.support.services import post_event, trigger_with_tenant

OWNER = "key-accounts@shop.example"


async def _upsert_then_buy(
    trigger: ServiceUnderTest, tenant: TestTenant, customer: str, address: str
) -> tuple[str, dict[str, Any]]:
    """The CRM's customer, then the shop's order; the invitation id, and the context expected."""
    account = f"acct-{uuid.uuid4().hex[:8]}"
    upsert = cloud_event(
        CUSTOMER_UPSERTED,
        {
            "customer_id": customer,
            "email": address,
            "account_id": account,
            "account_owner_email": OWNER,
            "attributes": {"country": "DK", "store": "aarhus", "segment": "vip"},
        },
        customer,
        source="/crm",
    )
    assert (await post_event(trigger, tenant, upsert))["decision"] == "recorded"
    order = f"o-{uuid.uuid4().hex[:8]}"
    bought = await post_event(
        trigger,
        tenant,
        purchase(
            customer,
            email=address,
            order_id=order,
            amount="49.90",
            currency="DKK",
            attributes={"store": "copenhagen", "product_category": "shoes"},
        ),
    )
    assert bought["decision"] == "invited", bought
    expected = {
        "order_id": order,
        "amount": "49.90",
        "currency": "DKK",
        "account_id": account,
        "account_owner_email": OWNER,
        "attributes": {"store": "copenhagen", "product_category": "shoes", "country": "DK", "segment": "vip"},
        "purpose": "survey",
        # The customer's 12 months of spend: this order, in øre.
        "spend_12m": [{"amount_minor": 4990, "currency": "DKK"}],
    }
    return bought["invitation_id"], expected


async def test_a_purchase_after_an_upsert_requests_a_survey_with_the_order_owner_and_attributes(
    start_service: StartService,
) -> None:
    trigger, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    invitation_id, expected = await _upsert_then_buy(trigger, tenant, customer, "jane@example.com")

    bootstrap = trigger.runtime.settings.kafka_bootstrap_servers
    [record] = await read_topic(bootstrap, topics.SURVEY_REQUESTS, is_request_for(customer))
    data = json.loads(record.value)["data"]
    assert data["invitation_id"] == invitation_id
    assert data["context"] == expected


async def test_the_answer_to_that_survey_carries_its_context(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    # The survey learns the trigger's tenant, and takes its request, from Kafka as in production.
    survey = await survey_service(start_service)
    trigger, tenant = await trigger_with_tenant(start_service)
    customer, address = f"c-{uuid.uuid4().hex}", f"jane-{uuid.uuid4().hex[:12]}@example.com"
    invitation_id, expected = await _upsert_then_buy(trigger, tenant, customer, address)

    await email_to(smtp_sink.directory, address)
    await invitation_in(survey, tenant, customer, uuid.UUID(invitation_id), "sent")
    token = survey_token(SECRET, uuid.UUID(invitation_id))
    assert (await survey.client.post(f"/s/{token}", data={"score": "3"})).status_code == 200
    more = await survey.client.post(f"/s/{token}/more", data={"comment": "The shoes pinch."})
    assert more.status_code == 200

    records = await read_topic(
        kafka_bootstrap,
        topics.SURVEY_EVENTS,
        lambda record: (
            is_event(SURVEY_RESPONDED, uuid.UUID(invitation_id))(record)
            or is_event(SURVEY_RESPONSE_UPDATED, uuid.UUID(invitation_id))(record)
        ),
        count=2,
    )
    by_type = {json.loads(record.value)["type"]: json.loads(record.value)["data"] for record in records}
    assert by_type[SURVEY_RESPONDED]["score"] == 3
    assert by_type[SURVEY_RESPONDED]["context"] == expected
    assert by_type[SURVEY_RESPONSE_UPDATED]["comment"] == "The shoes pinch."
    assert by_type[SURVEY_RESPONSE_UPDATED]["context"] == expected
