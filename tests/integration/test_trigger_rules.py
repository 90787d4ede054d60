"""The trigger's rules against real Postgres and Kafka, with the survey service running:
touchpoints as versioned configuration, delays, cancellation, consent, and the response clock."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from libs.common import topics
from libs.common.events import (
    SURVEY_BOUNCED,
    SURVEY_EXPIRED,
    SURVEY_FAILED,
    SURVEY_RESPONDED,
    SurveyFailed,
    SurveyResponded,
    SurveyStep,
    new_event,
)
from libs.devstack.smtp_sink import messages_to
from services.survey.config import SurveySettings
from services.survey.main import build as build_survey
from services.trigger import handlers
from services.trigger.config import TriggerSettings
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    metric_value,
    produce,
    read_topic,
)
from tests.integration.test_trigger_cli import nps
from tests.integration.test_trigger_concurrency import published_requests, request_ends
from tests.integration.test_trigger_intake import is_request_for
from tests.support.factories import cloud_event, purchase, ticket
from tests.support.services import decisions, post_event, post_events, trigger_with_tenant

SURVEY_SECRET = "integration-survey-secret-0123456789abcdef"


async def test_touchpoints_are_versioned_configuration_and_decisions_name_the_version(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    built_in = (await service.client.get("/v1/touchpoints", headers=tenant.headers)).json()["touchpoints"]
    assert [(t["name"], t["version"], t["built_in"]) for t in built_in] == [
        ("webshop-purchase", 0, True),
        ("support-ticket", 0, True),
    ]

    config = {
        "event_types": ["purchase.completed.v1"],
        "filters": [{"field": "status", "op": "in", "value": ["paid"]}],
    }
    first = await service.client.put("/v1/touchpoints/webshop-purchase", json=config, headers=tenant.headers)
    assert (first.status_code, first.json()["version"]) == (200, 1)
    customer = f"c-{uuid.uuid4().hex}"
    pending = await post_events(
        service, tenant, {**purchase(customer), "data": {**purchase(customer)["data"], "status": "pending"}}
    )
    assert pending["results"][0] | {"id": None} == {
        "id": None,
        "status": "accepted",
        "decision": "skipped",
        "reason": "filtered",
        "touchpoint": "webshop-purchase",
    }

    config["filters"][0]["value"] = ["paid", "pending"]  # type: ignore[index]
    second = await service.client.put("/v1/touchpoints/webshop-purchase", json=config, headers=tenant.headers)
    assert second.json()["version"] == 2
    again = await post_events(
        service, tenant, {**purchase(customer), "data": {**purchase(customer)["data"], "status": "pending"}}
    )
    assert again["results"][0]["decision"] == "invited"
    history = await decisions(service, tenant, customer)
    assert [(d["touchpoint_version"], d["outcome"], d["detail"]) for d in history] == [
        (2, "invited", None),
        (1, "skipped", "filter status in ['paid'] not met"),
    ]
    versions = (
        await service.client.get("/v1/touchpoints/webshop-purchase/versions", headers=tenant.headers)
    ).json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    # Configured touchpoints replace the built-in ones: tickets are no longer taken.
    closed = ticket(customer, ticket_id="T1", email="a@b.example")
    assert (await post_event(service, tenant, closed))["reason"] == "filtered"


async def test_bad_touchpoint_configuration_is_refused_naming_the_field(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    cases = [
        ({"event_types": ["order.shipped.v1"]}, "event_types"),
        (
            {
                "event_types": ["purchase.completed.v1"],
                "send_window": {"days": ["mon"], "start": "20:00", "end": "08:00"},
            },
            "before",
        ),
        (
            {
                "event_types": ["purchase.completed.v1"],
                "send_window": {"days": ["mon"], "start": "08:00", "end": "20:00", "time_zone": "Mars/Base"},
            },
            "unknown time zone",
        ),
        (
            {
                "event_types": ["purchase.completed.v1"],
                "filters": [{"field": "status", "op": "in", "value": "x"}],
            },
            "list value",
        ),
        (
            {"event_types": ["purchase.completed.v1"], "sample": {"percent": 10, "accounts_per_period": 5}},
            "exactly one",
        ),
        ({"event_types": ["purchase.completed.v1"], "surprise": True}, "surprise"),
    ]
    for body, problem in cases:
        response = await service.client.put("/v1/touchpoints/x", json=body, headers=tenant.headers)
        assert response.status_code == 422 and problem in response.text, (body, response.text)
    bad_name = await service.client.put(
        "/v1/touchpoints/Bad%20Name", json={"event_types": ["ticket.closed.v1"]}, headers=tenant.headers
    )
    assert bad_name.status_code == 422


async def test_a_delay_and_window_give_a_delayed_decision_with_its_time(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    config = {
        "event_types": ["purchase.completed.v1"],
        "delay_minutes": 3 * 24 * 60,
        "send_window": {
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "start": "08:00",
            "end": "20:00",
            "time_zone": "Europe/Copenhagen",
        },
    }
    await service.client.put("/v1/touchpoints/delivery", json=config, headers=tenant.headers)
    customer = f"c-{uuid.uuid4().hex}"
    result = await post_event(service, tenant, purchase(customer))
    assert result["decision"] == "delayed"
    send_at = datetime.fromisoformat(result["send_at"])
    assert send_at >= datetime.now(UTC) + timedelta(days=3) - timedelta(minutes=1)
    [request] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers,
        topics.SURVEY_REQUESTS,
        lambda r: json.loads(r.value)["data"]["customer_id"] == customer,
    )
    assert datetime.fromisoformat(json.loads(request.value)["data"]["send_at"]) == send_at


async def test_a_refund_before_sending_withdraws_the_invitation_and_no_email_goes_out(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    survey = await start_service(build_survey, SurveySettings, survey_token_secret=SURVEY_SECRET)
    await service.client.put(
        "/v1/touchpoints/webshop-purchase",
        json={"event_types": ["purchase.completed.v1"], "delay_minutes": 60},
        headers=tenant.headers,
    )
    customer, email = f"c-{uuid.uuid4().hex}", f"refund-{uuid.uuid4().hex[:8]}@example.com"
    order = purchase(customer, email=email)
    invited = await post_event(service, tenant, order)
    assert invited["decision"] == "delayed"
    refund = cloud_event(
        "order.cancelled.v1",
        {"order_id": order["data"]["order_id"], "customer_id": customer, "reason": "refunded"},
        customer,
    )
    cancelled = await post_event(service, tenant, refund)
    assert (cancelled["decision"], cancelled["reason"]) == ("cancelled", "cancelled")

    async def invitation_cancelled() -> bool:
        response = await survey.client.get(
            "/v1/invitations",
            params={"customer": customer},
            headers={"Authorization": tenant.headers["Authorization"]},
        )
        rows = response.json()["invitations"] if response.status_code == 200 else []
        return bool(rows) and rows[0]["status"] == "cancelled"

    await _tenant_known_to(survey, tenant)
    await eventually(invitation_cancelled, within=30)
    assert not messages_to(smtp_sink.directory, email)
    # The same order arriving again (a retried webhook) is not asked about either.
    retried = await post_event(service, tenant, {**order, "id": uuid.uuid4().hex})
    assert retried["reason"] == "cancelled"
    late = await post_event(
        service, tenant, purchase(f"c-{uuid.uuid4().hex}", order_id=order["data"]["order_id"])
    )
    assert late["reason"] == "cancelled"


async def _tenant_known_to(survey: ServiceUnderTest, tenant: TestTenant) -> None:
    """The survey service learns of tenants from nps.tenants; give this one its copy directly."""
    from libs.common.events import APIKEY_CREATED, TENANT_CREATED, ApiKeyCreated, TenantCreated
    from libs.common.tenancy import TENANCY_HANDLERS, hash_key, parse_key_id

    key_id = parse_key_id(tenant.api_key)
    assert key_id
    now = datetime.now(UTC)
    tenant_uuid = uuid.UUID(tenant.tenant_id)
    events = [
        new_event(
            TENANT_CREATED,
            tenant_id=tenant.tenant_id,
            source="/tests",
            subject=tenant.tenant_id,
            data=TenantCreated(tenant_id=tenant_uuid, name=tenant.name, created_at=now),
        ),
        new_event(
            APIKEY_CREATED,
            tenant_id=tenant.tenant_id,
            source="/tests",
            subject=tenant.tenant_id,
            data=ApiKeyCreated(
                key_id=key_id, tenant_id=tenant_uuid, key_hash=hash_key(tenant.api_key), created_at=now
            ),
        ),
    ]
    async with survey.runtime.database.uow() as uow:
        for item in events:
            await TENANCY_HANDLERS[item.type](item, uow)
        await uow.commit()


async def test_an_unsubscribe_stops_every_future_invitation_until_resubscribed(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer, email = f"c-{uuid.uuid4().hex}", f"leave-{uuid.uuid4().hex[:8]}@example.com"
    first = await post_event(service, tenant, purchase(customer, email=email))
    assert first["decision"] == "invited"
    gone = cloud_event("customer.unsubscribed.v1", {"email": email, "reason": "hard_bounce"}, customer)
    unsubscribed = await post_event(service, tenant, gone)
    # The invitation of a moment ago may still be pending: it is withdrawn.
    assert (unsubscribed["decision"], unsubscribed["reason"]) == ("cancelled", "unsubscribed")
    [withdrawn] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers,
        topics.SURVEY_REQUESTS,
        lambda r: (
            json.loads(r.value)["type"] == "survey.cancelled.v1"
            and json.loads(r.value)["data"]["customer_id"] == customer
        ),
    )
    assert json.loads(withdrawn.value)["data"] == {
        "invitation_id": first["invitation_id"],
        "customer_id": customer,
        "reason": "unsubscribed",
    }
    await service.client.put("/v1/policy", json={"rest_period_days": 0}, headers=tenant.headers)
    later = await post_event(service, tenant, purchase(customer, email=email))
    assert (later["decision"], later["reason"]) == ("skipped", "unsubscribed")
    # Under another customer id, the same address is still refused.
    other = await post_event(service, tenant, purchase(f"c-{uuid.uuid4().hex}", email=email.upper()))
    assert other["reason"] == "unsubscribed"
    back = cloud_event("customer.resubscribed.v1", {"customer_id": customer}, customer)
    assert (await post_event(service, tenant, back))["decision"] == "recorded"
    assert (await post_event(service, tenant, purchase(customer, email=email)))["decision"] == "invited"


async def test_a_known_contact_address_lets_an_anonymous_ticket_be_surveyed(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"zd-{uuid.uuid4().hex}"
    anonymous = ticket(customer)
    assert (await post_event(service, tenant, anonymous))["reason"] == "no_email"
    known = cloud_event(
        "customer.upserted.v1",
        {
            "customer_id": customer,
            "email": "requester@example.com",
            "time_zone": "Europe/Oslo",
            "account_id": "acme",
        },
        customer,
    )
    assert (await post_event(service, tenant, known))["decision"] == "recorded"
    ticket2 = ticket(customer)
    assert (await post_event(service, tenant, ticket2))["decision"] == "invited"


async def _tell_trigger(service: ServiceUnderTest, tenant: TestTenant, event_type: str, data: Any) -> str:
    """Publish a survey event on nps.survey-events, as the survey service would, and wait until the
    trigger's `responses` consumer has taken it."""
    customer = data.customer_id
    message = new_event(event_type, tenant_id=tenant.tenant_id, source="/tests", subject=customer, data=data)
    await produce(
        service.runtime.settings.kafka_bootstrap_servers,
        topics.SURVEY_EVENTS,
        message.envelope.to_json(),
        key=customer.encode(),
    )
    processed = service.runtime.definition.tables.processed_events

    async def taken() -> bool:
        async with service.runtime.database.uow() as uow:
            found = await uow.session.scalar(
                select(func.count())
                .select_from(processed)
                .where(processed.c.tenant_id == tenant.tenant_id, processed.c.event_id == message.id)
            )
        return bool(found)

    await eventually(taken, within=30)
    return message.id


def _answer(customer: str, invitation_id: str, responded_at: datetime) -> SurveyResponded:
    return SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.UUID(invitation_id),
        customer_id=customer,
        email="jane@example.com",
        touchpoint="webshop-purchase",
        score=9,
        responded_at=responded_at,
    )


async def test_the_response_clock_waits_for_the_outstanding_invitation_then_counts_from_the_answer(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    await service.client.put(
        "/v1/policy", json={"rest_period_days": 30, "rest_clock": "response"}, headers=tenant.headers
    )
    customer = f"c-{uuid.uuid4().hex}"
    first = await post_event(service, tenant, purchase(customer))
    assert first["decision"] == "invited"

    # Never answered yet: while the invitation is outstanding nobody asks again.
    waiting = await post_event(service, tenant, purchase(customer))
    assert (waiting["decision"], waiting["reason"]) == ("skipped", "rest_period")
    [latest, *_] = await decisions(service, tenant, customer)
    assert latest["detail"] == f"invitation {first['invitation_id']} is outstanding"
    assert latest["rest_until"] is None

    # Answered (31 days ago, past the 30-day rest period): the next purchase is asked again.
    await _tell_trigger(
        service,
        tenant,
        SURVEY_RESPONDED,
        _answer(customer, first["invitation_id"], NOW() - timedelta(days=31)),
    )
    second = await post_event(service, tenant, purchase(customer))
    assert second["decision"] == "invited"

    # A closure of some other invitation does not close this one.
    await _tell_trigger(
        service,
        tenant,
        SURVEY_EXPIRED,
        SurveyStep(invitation_id=uuid.uuid4(), customer_id=customer, touchpoint="webshop-purchase", at=NOW()),
    )
    still = await post_event(service, tenant, purchase(customer))
    assert (still["decision"], still["reason"]) == ("skipped", "rest_period")
    assert (await decisions(service, tenant, customer))[0]["detail"] == (
        f"invitation {second['invitation_id']} is outstanding"
    )

    # Expired unanswered: the rest period counts from the last answer again, which is long past.
    await _tell_trigger(
        service,
        tenant,
        SURVEY_EXPIRED,
        SurveyStep(
            invitation_id=uuid.UUID(second["invitation_id"]),
            customer_id=customer,
            touchpoint="webshop-purchase",
            at=NOW(),
        ),
    )
    order = purchase(customer)
    third = await post_event(service, tenant, order)
    assert third["decision"] == "invited"

    # Our own cancellation closes it too.
    refund = cloud_event(
        "order.cancelled.v1",
        {"order_id": order["data"]["order_id"], "customer_id": customer, "reason": "refunded"},
        customer,
    )
    assert (await post_event(service, tenant, refund))["decision"] == "cancelled"
    fourth = await post_event(service, tenant, purchase(customer))
    assert fourth["decision"] == "invited"

    # The survey service gave up on it (never delivered): closed too.
    failed = SurveyFailed(
        invitation_id=uuid.UUID(fourth["invitation_id"]),
        customer_id=customer,
        touchpoint="webshop-purchase",
        at=NOW(),
        reason="attempts_exhausted",
    )
    await _tell_trigger(service, tenant, SURVEY_FAILED, failed)
    fifth = await post_event(service, tenant, purchase(customer))
    assert fifth["decision"] == "invited"

    # It bounced: it reached nobody, so it is closed as well.
    bounced = SurveyStep(
        invitation_id=uuid.UUID(fifth["invitation_id"]),
        customer_id=customer,
        touchpoint="webshop-purchase",
        at=NOW(),
    )
    await _tell_trigger(service, tenant, SURVEY_BOUNCED, bounced)
    sixth = await post_event(service, tenant, purchase(customer))
    assert sixth["decision"] == "invited"

    # Answered just now: nothing is outstanding, and the rest period runs from this answer.
    await _tell_trigger(service, tenant, SURVEY_RESPONDED, _answer(customer, sixth["invitation_id"], NOW()))
    resting = await post_event(service, tenant, purchase(customer))
    assert (resting["decision"], resting["reason"]) == ("skipped", "rest_period")
    [latest, *_] = await decisions(service, tenant, customer)
    assert latest["detail"] is None
    assert datetime.fromisoformat(latest["rest_until"]) > NOW() + timedelta(days=29)


def NOW() -> datetime:
    return datetime.now(UTC)


async def test_a_ticket_without_locale_or_name_uses_the_stored_ones(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    known = cloud_event(
        "customer.upserted.v1",
        {"customer_id": customer, "email": "dorte@example.dk", "locale": "da-DK", "name": "Dorte Ølgaard"},
        customer,
    )
    assert (await post_event(service, tenant, known))["decision"] == "recorded"
    closed = ticket(customer)
    assert (await post_event(service, tenant, closed))["decision"] == "invited"
    [request] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_REQUESTS, is_request_for(customer)
    )
    data = json.loads(request.value)["data"]
    assert (data["email"], data["locale"], data["name"]) == ("dorte@example.dk", "da-DK", "Dorte Ølgaard")

    # The event's own values win over the stored ones.
    await service.client.put("/v1/policy", json={"rest_period_days": 0}, headers=tenant.headers)
    own = ticket(customer, locale="en-GB", name="D. Ølgaard")
    assert (await post_event(service, tenant, own))["decision"] == "invited"
    requests = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers,
        topics.SURVEY_REQUESTS,
        is_request_for(customer),
        count=2,
    )
    assert sorted(
        (json.loads(r.value)["data"]["locale"], json.loads(r.value)["data"]["name"]) for r in requests
    ) == [
        ("da-DK", "Dorte Ølgaard"),
        ("en-GB", "D. Ølgaard"),
    ]


async def test_a_relationship_invitation_carries_the_stored_locale_and_name(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer, account = f"c-{uuid.uuid4().hex}", f"acct-{uuid.uuid4().hex[:8]}"
    known = cloud_event(
        "customer.upserted.v1",
        {
            "customer_id": customer,
            "email": "buyer@b2b.example",
            "account_id": account,
            "locale": "da-DK",
            "name": "Bjarne Kjær",
        },
        customer,
    )
    assert (await post_event(service, tenant, known))["decision"] == "recorded"
    relationship = {"sample": {"accounts_per_period": 1_000, "period": "quarter"}}
    response = await service.client.put(
        "/v1/touchpoints/relationship-b2b", json=relationship, headers=tenant.headers
    )
    assert response.status_code == 200
    settings = service.runtime.settings
    assert isinstance(settings, TriggerSettings)
    async with service.runtime.database.uow() as uow:
        await handlers.run_cohorts(uow, now=NOW(), settings=settings)
        await uow.commit()
    assert (await decisions(service, tenant, customer))[0]["outcome"] == "invited"
    [request] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_REQUESTS, is_request_for(customer)
    )
    data = json.loads(request.value)["data"]
    assert (data["touchpoint"], data["locale"], data["name"]) == ("relationship-b2b", "da-DK", "Bjarne Kjær")


async def test_the_first_touchpoint_of_one_type_warns_that_the_other_type_is_taken_by_none(
    start_service: StartService, pg_url: str, tmp_path: Path
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    response = await service.client.put(
        "/v1/touchpoints/delivery", json={"event_types": ["purchase.completed.v1"]}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["warnings"] == [
        "the built-in touchpoints webshop-purchase and support-ticket no longer apply: "
        "ticket.closed.v1 is taken by no touchpoint now"
    ]
    again = await service.client.put(
        "/v1/touchpoints/delivery",
        json={"event_types": ["purchase.completed.v1"], "delay_minutes": 60},
        headers=tenant.headers,
    )
    assert again.json()["warnings"] == ["ticket.closed.v1 is taken by no touchpoint now"]
    config = tmp_path / "support.json"
    config.write_text(json.dumps({"event_types": ["ticket.closed.v1"]}))
    code, out, _ = await nps(pg_url, "touchpoint", "set", tenant.name, "support", str(config))
    assert (code, out.strip()) == (0, "support is now version 1")

    _, other = await trigger_with_tenant(start_service)
    config.write_text(json.dumps({"event_types": ["ticket.closed.v1"], "filters": []}))
    code, out, _ = await nps(pg_url, "touchpoint", "set", other.name, "support", str(config))
    assert code == 0
    assert out.strip().splitlines() == [
        "support is now version 1",
        "warning: the built-in touchpoints webshop-purchase and support-ticket no longer apply: "
        "purchase.completed.v1 is taken by no touchpoint now",
    ]


async def test_a_dry_run_answers_what_would_happen_and_records_nothing(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    since = await request_ends(service)
    customer = f"c-{uuid.uuid4().hex}"
    order = purchase(customer)
    dry = await service.client.post("/v1/decisions/dry-run", json=order, headers=tenant.headers)
    assert dry.status_code == 200, dry.text
    assert dry.json() == {
        "id": order["id"],
        "outcome": "invited",
        "reason": None,
        "detail": None,
        "touchpoint": "webshop-purchase",
        "send_at": dry.json()["send_at"],
        "rest_until": None,
    }
    assert dry.json()["send_at"] is not None
    assert await decisions(service, tenant, customer) == []
    # Nothing was claimed or clocked: the real event is new, and is invited.
    real = await post_event(service, tenant, order)
    assert (real["status"], real["decision"]) == ("accepted", "invited")
    later = await service.client.post(
        "/v1/decisions/dry-run", json=purchase(customer), headers=tenant.headers
    )
    assert (later.json()["outcome"], later.json()["reason"]) == ("skipped", "rest_period")
    again = await service.client.post("/v1/decisions/dry-run", json=order, headers=tenant.headers)
    assert again.json()["outcome"] == "duplicate"
    assert len(await decisions(service, tenant, customer)) == 1
    requests = await published_requests(service, {customer}, since)
    assert [r["id"] for r in requests] == [real["invitation_id"]]

    bad = await service.client.post(
        "/v1/decisions/dry-run", json={**order, "data": {"order_id": "1"}}, headers=tenant.headers
    )
    assert bad.status_code == 422 and "data.customer_id" in bad.text
    foreign = await service.client.post(
        "/v1/decisions/dry-run", json={**order, "tenantid": str(uuid.uuid4())}, headers=tenant.headers
    )
    assert foreign.status_code == 422 and "tenantid" in foreign.text


async def test_decisions_are_counted_by_touchpoint_and_reason(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    labels = {"outcome": "skipped", "reason": "no_email", "touchpoint": "webshop-purchase"}
    before = await metric_value(service.client, "nps_trigger_decisions_total", **labels)
    await post_events(service, tenant, purchase(f"c-{uuid.uuid4().hex}", email=None))
    await post_events(service, tenant, purchase(f"c-{uuid.uuid4().hex}", email=None))
    assert await metric_value(service.client, "nps_trigger_decisions_total", **labels) == before + 2
