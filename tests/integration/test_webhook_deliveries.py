"""Outbound webhooks against the real Postgres and broker and a real HTTP receiver on this machine
that verifies each delivery's signature with the ``standardwebhooks`` library, as a tenant would.

Local receivers are private addresses, so the service runs with the development setting that allows
them (``OUTBOUND_ALLOW_PRIVATE``), except where the SSRF guard itself is under test."""

from __future__ import annotations

import socket
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks.webhooks import WebhookVerificationError

from libs.common import topics
from libs.common.events import (
    NPS_UPDATED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Event,
    NpsUpdated,
    NpsWindow,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from libs.devstack.smtp_sink import messages_to
from services.alerting import handlers
from services.alerting.config import AlertingSettings
from services.alerting.handlers import webhooks
from services.alerting.main import build
from services.alerting.repository_webhooks import ClaimedDelivery
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    produce,
    provision_tenant,
)
from tests.support.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.integration


async def _alerting(start_service: StartService, **overrides: Any) -> ServiceUnderTest:
    # The same settings as the follow-up tests (tests/integration/test_alerting_followups.py), so the
    # session shares one service.
    values: dict[str, Any] = {
        "sla_check_seconds": 3600,
        "notify_poll_seconds": 0.1,
        "notify_delay_seconds": 0,
        "outbound_allow_private": True,
        **overrides,
    }
    return await start_service(build, AlertingSettings, **values)


@pytest.fixture
async def alerting(start_service: StartService) -> ServiceUnderTest:
    return await _alerting(start_service)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as running:
        yield running


async def _subscribe(
    sut: ServiceUnderTest, tenant: TestTenant, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    response = await sut.client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "event_types": types or ["response.recorded"], "description": "CRM"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    assert endpoint["secret"].startswith("whsec_")
    return endpoint


async def _log(sut: ServiceUnderTest, tenant: TestTenant, endpoint_id: str) -> list[dict[str, Any]]:
    response = await sut.client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=tenant.headers)
    assert response.status_code == 200, response.text
    deliveries: list[dict[str, Any]] = response.json()["deliveries"]
    return deliveries


async def _ping(sut: ServiceUnderTest, tenant: TestTenant, endpoint_id: str) -> str:
    response = await sut.client.post(f"/v1/webhook-endpoints/{endpoint_id}/ping", headers=tenant.headers)
    assert response.status_code == 202, response.text
    delivery_id: str = response.json()["id"]
    return delivery_id


async def _delivery(sut: ServiceUnderTest, tenant: TestTenant, endpoint_id: str, delivery_id: str) -> Any:
    async def settled() -> dict[str, Any] | None:
        for delivery in await _log(sut, tenant, endpoint_id):
            if delivery["id"] == delivery_id and delivery["state"] != "pending":
                return delivery
        return None

    return await eventually(settled, within=40)


def _answer(tenant: TestTenant, score: int, customer: str) -> Event[Any]:
    data = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id=customer,
        email=f"{customer}@shoppers.example",
        name="Jane Doe",
        touchpoint="webshop-purchase",
        score=score,
        comment="The parcel came two weeks late.",
        responded_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    return new_event(
        SURVEY_RESPONDED, tenant_id=tenant.tenant_id, data=data, subject=customer, source="/tests"
    )


async def test_a_detractor_answer_is_delivered_as_response_recorded_and_case_opened_signed(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    url = receiver.script("/crm", "200")
    endpoint = await _subscribe(alerting, tenant, url, ["response.recorded", "case.opened"])
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    event = _answer(tenant, 2, customer)
    await produce(kafka_bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=customer.encode())

    await eventually(lambda: _async(len(receiver.at("/crm")) >= 2), within=40)
    payloads = [item.verify(endpoint["secret"]) for item in receiver.at("/crm")]
    by_type = {payload["type"]: payload for payload in payloads}
    assert set(by_type) == {"response.recorded", "case.opened"}
    recorded = by_type["response.recorded"]["data"]
    assert recorded["customer_id"] == customer
    assert recorded["score"] == 2
    assert recorded["category"] == "detractor"
    assert by_type["case.opened"]["data"]["customer_id"] == customer
    # No contact details travel: neither the email address nor the name.
    for item in receiver.at("/crm"):
        assert b"shoppers.example" not in item.body
        assert b"Jane Doe" not in item.body
    # A forged or re-signed body does not verify.
    first = receiver.at("/crm")[0]
    with pytest.raises(WebhookVerificationError):
        first.verify("whsec_" + "A" * 44)
    deliveries = await eventually(lambda: _delivered(alerting, tenant, endpoint["id"], 2))
    assert {delivery["event_type"] for delivery in deliveries} == {"response.recorded", "case.opened"}
    assert {item.headers["webhook-id"] for item in receiver.at("/crm")} == {
        f"msg_{uuid.UUID(delivery['id']).hex}" for delivery in deliveries
    }


async def _async(value: Any) -> Any:
    return value


async def _delivered(sut: ServiceUnderTest, tenant: TestTenant, endpoint_id: str, count: int) -> Any:
    deliveries = [d for d in await _log(sut, tenant, endpoint_id) if d["state"] == "delivered"]
    return deliveries if len(deliveries) >= count else None


async def test_during_a_rotation_both_secrets_verify(alerting: ServiceUnderTest, receiver: Receiver) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/rotating", "200"))
    rotated = await alerting.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=tenant.headers
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]

    delivery_id = await _ping(alerting, tenant, endpoint["id"])
    assert (await _delivery(alerting, tenant, endpoint["id"], delivery_id))["state"] == "delivered"
    [received] = receiver.at("/rotating")
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert received.verify(endpoint["secret"]) == received.verify(new_secret)
    assert received.verify(new_secret)["type"] == "webhook.ping"
    # The secret is shown on creation and rotation only.
    listed = await alerting.client.get("/v1/webhook-endpoints", headers=tenant.headers)
    assert "secret" not in listed.json()["endpoints"][0]


async def test_a_500_then_a_200_is_delivered_on_the_second_attempt(
    alerting: ServiceUnderTest, receiver: Receiver
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/flaky", "500", "200"))
    delivery_id = await _ping(alerting, tenant, endpoint["id"])

    delivery = await _delivery(alerting, tenant, endpoint["id"], delivery_id)
    assert delivery["state"] == "delivered"
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [500, 200]
    assert delivery["attempts"][0]["response_excerpt"] == "receiver_unavailable"
    first, second = receiver.at("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_a_receiver_that_hangs_is_recorded_as_a_timeout(
    alerting: ServiceUnderTest, receiver: Receiver
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/hang", "hang"))
    delivery_id = await _ping(alerting, tenant, endpoint["id"])

    async def timed_out() -> Any:
        for delivery in await _log(alerting, tenant, endpoint["id"]):
            if delivery["id"] == delivery_id and delivery["attempts"]:
                return delivery
        return None

    delivery = await eventually(timed_out, within=40)
    assert delivery["state"] == "pending"  # it will be tried again
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] is None
    assert "no answer within 10 s" in attempt["error"]


async def test_a_10_mb_answer_is_cut_to_an_excerpt(alerting: ServiceUnderTest, receiver: Receiver) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/huge", "huge"))
    delivery_id = await _ping(alerting, tenant, endpoint["id"])

    delivery = await _delivery(alerting, tenant, endpoint["id"], delivery_id)
    assert delivery["state"] == "delivered"
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "x" * 1024


async def test_one_attempt_at_a_10_mb_answer_reads_no_more_than_64_kb(receiver: Receiver) -> None:
    url = receiver.script("/huge-direct", "huge")
    claimed = ClaimedDelivery(
        id=0,
        message_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        endpoint_id=uuid.uuid4(),
        event_type="webhook.ping",
        payload={"type": "webhook.ping", "timestamp": datetime.now(UTC).isoformat(), "data": {}},
        attempts=1,
        created_at=datetime.now(UTC),
        url=url,
        secret="whsec_" + "A" * 44,
        previous_secret=None,
        previous_secret_until=None,
    )
    options = webhooks.SenderOptions(limit=1, lease=timedelta(seconds=30), allow_private=True)
    async with httpx.AsyncClient() as client:
        tracemalloc.start()
        try:
            outcome = await webhooks.attempt(client, claimed, options)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert outcome.result == "delivered"
    # Reading the whole answer would take 10 MB; the excerpt needs 64 KB at most, and some room.
    assert peak < 2 * 1024 * 1024


@pytest.mark.parametrize("target", ["127.0.0.1", "169.254.169.254"])
async def test_a_redirect_to_a_private_address_fails_and_is_not_followed(
    alerting: ServiceUnderTest, receiver: Receiver, target: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    canary = f"http://{target}:{receiver.port}/canary" if target == "127.0.0.1" else f"http://{target}/latest"
    endpoint = await _subscribe(alerting, tenant, receiver.script("/moved", f"redirect:{canary}"))
    delivery_id = await _ping(alerting, tenant, endpoint["id"])

    delivery = await _delivery(alerting, tenant, endpoint["id"], delivery_id)
    assert delivery["state"] == "failed"
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 302
    assert "redirects are not followed" in attempt["error"]
    assert receiver.at("/canary") == []


async def test_redeliver_sends_the_same_delivery_again(
    alerting: ServiceUnderTest, receiver: Receiver
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/again", "200"))
    delivery_id = await _ping(alerting, tenant, endpoint["id"])
    await _delivery(alerting, tenant, endpoint["id"], delivery_id)

    response = await alerting.client.post(
        f"/v1/webhook-deliveries/{delivery_id}/redeliver", headers=tenant.headers
    )
    assert response.status_code == 202, response.text

    async def twice() -> Any:
        for delivery in await _log(alerting, tenant, endpoint["id"]):
            if (
                delivery["id"] == delivery_id
                and delivery["state"] == "delivered"
                and len(delivery["attempts"]) == 2
            ):
                return delivery
        return None

    await eventually(twice, within=30)
    first, second = receiver.at("/again")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.verify(endpoint["secret"])["data"]["endpoint_id"] == endpoint["id"]
    other = await provision_tenant(alerting.runtime)
    refused = await alerting.client.post(
        f"/v1/webhook-deliveries/{delivery_id}/redeliver", headers=other.headers
    )
    assert refused.status_code == 404


async def test_an_endpoint_failing_for_five_days_is_disabled_and_the_tenant_told(
    alerting: ServiceUnderTest, receiver: Receiver, smtp_sink: Mailbox
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/down", "500"))
    first = await _ping(alerting, tenant, endpoint["id"])

    async def attempted() -> Any:
        return [d for d in await _log(alerting, tenant, endpoint["id"]) if d["id"] == first and d["attempts"]]

    await eventually(attempted, within=30)
    # Five days of failures, without waiting them out: the endpoint's first failure moves back.
    async with alerting.runtime.database.uow() as uow:
        await uow.session.execute(
            text(
                "UPDATE alerting.webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' "
                "WHERE id = :id"
            ),
            {"id": endpoint["id"]},
        )
        await uow.commit()
    await _ping(alerting, tenant, endpoint["id"])

    async def disabled() -> Any:
        shown = await alerting.client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.headers)
        return shown.json() if not shown.json()["enabled"] else None

    shown = await eventually(disabled, within=30)
    assert "failed for 5 days" in shown["disabled_reason"]
    notices = await eventually(
        lambda: _async(messages_to(smtp_sink.directory, tenant.owner_email)), within=30
    )
    assert any("Webhook endpoint disabled" in str(message["Subject"]) for message in notices)
    refused = await alerting.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/ping", headers=tenant.headers
    )
    assert refused.status_code == 409

    enabled = await alerting.client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=tenant.headers
    )
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None


# --- the SSRF guard, with the development setting off --------------------------------------------


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A DNS of the test's own for names under ``.example.com`` (the machine has no DNS): what each
    name resolves to can change between two lookups, as an attacker's rebinding name does."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answers[host], int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield answers


#: The guarded service keeps to a database and consumer groups of its own: its sender would refuse
#: the local receivers of the other tests, and theirs would reach the private addresses of these.
GUARDED_DATABASE = f"alerting_guarded_{uuid.uuid4().hex[:8]}"
GUARDED_GROUPS = f"test-guarded-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def guarded(start_service: StartService, pg_url: str) -> ServiceUnderTest:
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": GUARDED_DATABASE}
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{GUARDED_DATABASE}"'))
    finally:
        await admin.dispose()
    database_url = make_url(pg_url).set(database=GUARDED_DATABASE).render_as_string(hide_password=False)
    return await _alerting(
        start_service,
        outbound_allow_private=False,
        database_url=database_url,
        kafka_group_prefix=GUARDED_GROUPS,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.partner.example.com/in",
        "https://127.0.0.1/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/in",
        "https://localhost/in",
        "https://2130706433/in",
        "https://inside.partner.example.com/in",
    ],
)
async def test_targets_that_are_or_resolve_to_private_addresses_are_refused_at_creation(
    guarded: ServiceUnderTest, resolver: dict[str, str], url: str
) -> None:
    resolver["inside.partner.example.com"] = "10.1.2.3"
    tenant = await provision_tenant(guarded.runtime)
    response = await guarded.client.post(
        "/v1/webhook-endpoints", json={"url": url, "event_types": ["case.opened"]}, headers=tenant.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] in {"unsafe_url", "invalid_request"}
    assert "url" in response.json()["detail"]


async def test_a_name_rebound_to_a_private_address_after_creation_is_refused_at_the_attempt(
    guarded: ServiceUnderTest, resolver: dict[str, str]
) -> None:
    resolver["rebind.partner.example.com"] = "93.184.215.14"
    tenant = await provision_tenant(guarded.runtime)
    endpoint = await _subscribe(guarded, tenant, "https://rebind.partner.example.com/in")
    resolver["rebind.partner.example.com"] = "169.254.169.254"
    delivery_id = await _ping(guarded, tenant, endpoint["id"])

    delivery = await _delivery(guarded, tenant, endpoint["id"], delivery_id)
    assert delivery["state"] == "failed"
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] is None
    assert "169.254.169.254, which is not a public address" in attempt["error"]


async def test_event_types_outside_the_closed_set_are_refused(alerting: ServiceUnderTest) -> None:
    tenant = await provision_tenant(alerting.runtime)
    response = await alerting.client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://crm.partner.example.com/in", "event_types": ["case.deleted"]},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert "event_types" in response.text


async def test_a_customers_deliveries_keep_their_order_and_others_do_not_wait(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/ordered", "500", "200"))
    waiting, other = f"customer-{uuid.uuid4().hex[:8]}", f"customer-{uuid.uuid4().hex[:8]}"
    first, second, third = (
        _answer(tenant, 9, waiting),
        _answer(tenant, 10, waiting),
        _answer(tenant, 10, other),
    )
    for event in (first, second):
        await produce(kafka_bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=waiting.encode())
    await eventually(lambda: _async(len(receiver.at("/ordered")) >= 1), within=30)
    await produce(kafka_bootstrap, topics.SURVEY_EVENTS, third.envelope.to_json(), key=other.encode())

    await eventually(lambda: _async(len(receiver.at("/ordered")) >= 4), within=40)
    order = [item.verify(endpoint["secret"])["data"]["response_id"] for item in receiver.at("/ordered")]
    ids = [str(event.data.response_id) for event in (first, third, first, second)]
    # The first answer failed once: the same customer's second waited for its retry, the other
    # customer's went at once.
    assert order == ids


async def test_erasing_a_customer_anonymises_their_deliveries(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/erase", "200"))
    customer = f"erased-{uuid.uuid4().hex[:8]}"
    event = _answer(tenant, 9, customer)
    await produce(kafka_bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=customer.encode())
    await eventually(lambda: _delivered(alerting, tenant, endpoint["id"], 1), within=30)

    async with alerting.runtime.database.uow() as uow:
        erased = await uow.repository.erase_customer_deliveries(uuid.UUID(tenant.tenant_id), customer)
        await uow.commit()
    assert erased == 1
    [delivery] = await _log(alerting, tenant, endpoint["id"])
    assert delivery["payload"]["data"] == {"erased": True}
    assert delivery["attempts"][0]["response_excerpt"] is None
    async with alerting.runtime.database.uow() as uow:
        traces = await uow.session.scalar(
            text(
                "SELECT count(*) FROM alerting.webhook_deliveries d "
                "LEFT JOIN alerting.webhook_attempts a ON a.delivery_id = d.id "
                "WHERE d.tenant_id = :tenant AND (d::text LIKE :like OR a::text LIKE :like)"
            ),
            {"tenant": tenant.tenant_id, "like": f"%{customer}%"},
        )
    assert traces == 0


async def test_a_breach_and_a_resolution_are_each_delivered_once(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(
        alerting, tenant, receiver.script("/cases", "200"), ["case.breached", "case.resolved", "case.updated"]
    )
    customer = f"late-{uuid.uuid4().hex[:8]}"
    # Ten days ago: past every SLA time of a new tenant, whatever today is.
    data = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id=customer,
        email=f"{customer}@shoppers.example",
        touchpoint="webshop-purchase",
        score=2,
        responded_at=datetime.now(UTC) - timedelta(days=10),
    )
    event = new_event(
        SURVEY_RESPONDED, tenant_id=tenant.tenant_id, data=data, subject=customer, source="/tests"
    )
    await produce(kafka_bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=customer.encode())

    async def case_id() -> str | None:
        cases = (await alerting.client.get("/v1/cases", headers=tenant.headers)).json()["cases"]
        return str(cases[0]["id"]) if cases else None

    case = await eventually(case_id, within=30)
    async with alerting.runtime.database.uow() as uow:
        await handlers.run_clock(uow, datetime.now(UTC) + timedelta(minutes=2))
        await uow.commit()
    resolved = await alerting.client.patch(
        f"/v1/cases/{case}", json={"status": "resolved"}, headers=tenant.headers
    )
    assert resolved.status_code == 200, resolved.text

    def told() -> list[str]:
        return [item.verify(endpoint["secret"])["type"] for item in receiver.at("/cases")]

    await eventually(lambda: _async("case.resolved" in told()), within=40)
    types = told()
    assert types.count("case.breached") == 1
    assert types.count("case.resolved") == 1
    assert types.index("case.breached") < types.index("case.resolved")
    assert "case.updated" in types
    payloads = [item.verify(endpoint["secret"]) for item in receiver.at("/cases")]
    assert {payload["data"]["customer_id"] for payload in payloads} == {customer}


async def test_the_all_time_score_of_a_touchpoint_is_delivered_as_nps_changed(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/scores", "200"), ["nps.changed"])
    now = datetime.now(UTC)
    counts = {"promoters": 3, "passives": 1, "detractors": 1, "responses": 5, "nps": 40.0, "as_of": now}
    daily = NpsUpdated(
        touchpoint="checkout",
        window=NpsWindow(bucket="day", start=now.date(), end=now.date() + timedelta(days=1)),
        **counts,
    )
    overall = NpsUpdated(touchpoint="checkout", **counts)
    for score in (daily, overall):
        event = new_event(
            NPS_UPDATED, tenant_id=tenant.tenant_id, data=score, subject="checkout", source="/tests"
        )
        await produce(kafka_bootstrap, topics.SCORES, event.envelope.to_json(), key=b"checkout")

    await eventually(lambda: _async(receiver.at("/scores")), within=30)
    await eventually(lambda: _delivered(alerting, tenant, endpoint["id"], 1), within=30)
    [received] = receiver.at("/scores")
    payload = received.verify(endpoint["secret"])
    assert payload["type"] == "nps.changed"
    assert payload["data"]["nps"] == 40.0
    assert len(await _log(alerting, tenant, endpoint["id"])) == 1


def _revision(
    answer: SurveyResponded, revision: int, score: int, comment: str | None
) -> SurveyResponseUpdated:
    """The same answer as the survey announces it once the customer changed it."""
    return SurveyResponseUpdated(
        response_id=answer.response_id,
        invitation_id=answer.invitation_id,
        customer_id=answer.customer_id,
        touchpoint=answer.touchpoint,
        revision=revision,
        score=score,
        comment=comment,
        responded_at=answer.responded_at,
        updated_at=datetime.now(UTC),
        context=answer.context,
    )


async def _publish(
    kafka_bootstrap: str, tenant: TestTenant, data: SurveyResponded | SurveyResponseUpdated
) -> None:
    event_type = SURVEY_RESPONDED if isinstance(data, SurveyResponded) else SURVEY_RESPONSE_UPDATED
    event = new_event(
        event_type, tenant_id=tenant.tenant_id, data=data, subject=data.customer_id, source="/tests"
    )
    await produce(
        kafka_bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=data.customer_id.encode()
    )


async def test_a_changed_answer_is_delivered_as_response_updated_with_its_revision(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(alerting, tenant, receiver.script("/updates", "200"), ["response.updated"])
    customer = f"changed-{uuid.uuid4().hex[:8]}"
    answer = _answer(tenant, 6, customer).data
    await _publish(kafka_bootstrap, tenant, answer)
    await _publish(kafka_bootstrap, tenant, _revision(answer, 2, 9, "Sorted out the next day, thanks."))

    [delivery] = await eventually(lambda: _delivered(alerting, tenant, endpoint["id"], 1), within=40)
    assert delivery["event_type"] == "response.updated"
    [received] = receiver.at("/updates")
    payload = received.verify(endpoint["secret"])
    assert payload["type"] == "response.updated"
    data = payload["data"]
    assert data["response_id"] == str(answer.response_id)
    assert data["customer_id"] == customer
    assert (data["revision"], data["score"], data["category"]) == (2, 9, "promoter")
    assert data["comment"] == "Sorted out the next day, thanks."
    # The first version went to no one: the endpoint hears of changes only.
    assert [d["event_type"] for d in await _log(alerting, tenant, endpoint["id"])] == ["response.updated"]
    assert b"shoppers.example" not in received.body and b"Jane Doe" not in received.body


async def test_a_recovery_score_is_delivered_as_recovery_measured_once(
    alerting: ServiceUnderTest, receiver: Receiver, kafka_bootstrap: str
) -> None:
    tenant = await provision_tenant(alerting.runtime)
    endpoint = await _subscribe(
        alerting, tenant, receiver.script("/recovery", "200"), ["recovery.measured", "case.updated"]
    )
    customer = f"recovered-{uuid.uuid4().hex[:8]}"
    await _publish(kafka_bootstrap, tenant, _answer(tenant, 2, customer).data)

    async def case_id() -> str | None:
        cases = (await alerting.client.get("/v1/cases", headers=tenant.headers)).json()["cases"]
        return str(cases[0]["id"]) if cases else None

    case = await eventually(case_id, within=30)
    resolved = await alerting.client.patch(
        f"/v1/cases/{case}", json={"status": "resolved"}, headers=tenant.headers
    )
    assert resolved.status_code == 200, resolved.text
    # The customer answers the recovery survey, then changes that answer: the score is measured
    # when it first appears, and a later revision is not a second measurement.
    recovery = _answer(tenant, 8, customer).data.model_copy(
        update={"context": SurveyContext(purpose="recovery", recovery_case_id=uuid.UUID(case))}
    )
    await _publish(kafka_bootstrap, tenant, recovery)
    await _publish(kafka_bootstrap, tenant, _revision(recovery, 2, 9, None))

    async def revised() -> Any:
        async with alerting.runtime.database.uow() as uow:
            row = (
                await uow.session.execute(
                    text("SELECT recovery_score, updated_at FROM alerting.followup_cases WHERE id = :id"),
                    {"id": uuid.UUID(case)},
                )
            ).one()
        return row if row.recovery_score == 9 else None

    last = (await eventually(revised, within=40)).updated_at

    async def told_of_revision() -> Any:
        deliveries = await _log(alerting, tenant, endpoint["id"])
        updated = [
            d["payload"]["data"]["updated_at"] for d in deliveries if d["event_type"] == "case.updated"
        ]
        return deliveries if last.isoformat() in updated else None

    # The revision's case.updated is queued in the transaction that would queue its recovery.measured.
    deliveries = await eventually(told_of_revision, within=40)
    measured = [d for d in deliveries if d["event_type"] == "recovery.measured"]
    assert len(measured) == 1
    await eventually(lambda: _delivered(alerting, tenant, endpoint["id"], len(deliveries)), within=40)
    payloads = [item.verify(endpoint["secret"]) for item in receiver.at("/recovery")]
    [told] = [payload for payload in payloads if payload["type"] == "recovery.measured"]
    assert told["data"] == {"case_id": case, "customer_id": customer, "recovery_score": 8}
