"""The limits of the public survey pages, as the people and machines behind one address see them:
mail scanners, a company behind one NAT, Apple's privacy proxy, a load balancer, and somebody
guessing links (real Postgres, broker and SMTP sink; the service's default limits)."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from libs.common import topics
from libs.common.app import create_app, server_options
from libs.common.events import SURVEY_OPENED, SURVEY_REQUESTED, SurveyRequested, new_event
from libs.devstack.ports import free_port
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.survey.domain.tokens import survey_token
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    provision_tenant,
    read_topic,
)
from tests.integration.test_survey_flow import (
    PUBLIC_URL,
    SECRET,
    asked_once,
    email_to,
    invitation_in,
    request_survey,
    survey_service,
    unique_address,
)
from tests.support.mail import every_link

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@asynccontextmanager
async def behind(service: ServiceUnderTest, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service's public pages as seen from one client address (the service's app as it is
    served, with limits of its own, so what other tests did from their addresses is no matter)."""
    transport = httpx.ASGITransport(app=create_app(service.runtime), client=(address, 43210))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield client


def an_address() -> str:
    """One no other test uses: the limits are rows every replica (and every test) shares."""
    return f"198.{18 + secrets.randbelow(2)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def a_loopback_address() -> str:
    """A source address for a real connection to a served app that no other test connects from."""
    return f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def connecting_from(url: str, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=httpx.AsyncHTTPTransport(local_address=address))


async def _stamp(service: ServiceUnderTest, invitation_id: uuid.UUID, column: str) -> Any:
    async with service.runtime.database.uow() as uow:
        return await uow.session.scalar(
            text(f"SELECT {column} FROM survey.invitations WHERE id = :id"), {"id": invitation_id}
        )


async def _sent_an_hour_ago(service: ServiceUnderTest, invitation_id: uuid.UUID) -> None:
    """The email went out an hour ago: its opens are no longer a gateway's on delivery."""
    async with service.runtime.database.uow() as uow:
        await uow.session.execute(
            text("UPDATE survey.invitations SET sent_at = sent_at - interval '1 hour' WHERE id = :id"),
            {"id": invitation_id},
        )
        await uow.commit()


def _opened(invitation_id: uuid.UUID):  # type: ignore[no-untyped-def]
    def match(record: Any) -> bool:
        event = json.loads(record.value)
        return bool(event["type"] == SURVEY_OPENED and event["data"]["invitation_id"] == str(invitation_id))

    return match


async def test_a_scanner_fetching_and_heading_every_link_of_an_email_is_served_and_records_nothing(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service, tenant, customer, address, invitation_id = await asked_once(start_service, kafka_bootstrap)
    message = await email_to(smtp_sink.directory, address)
    links = every_link(message)
    assert len(links) == 14  # 11 scores, the visible unsubscribe link, the pixel, the header

    statuses = []
    async with behind(service, an_address()) as scanner:
        for link in links:
            path = link.removeprefix(PUBLIC_URL)
            statuses += [(await scanner.head(path)).status_code, (await scanner.get(path)).status_code]
    assert len(statuses) == 28
    assert 429 not in statuses and set(statuses) <= {200, 405}, statuses
    [invitation] = await _invitations(service, tenant, customer)
    assert invitation["status"] == "sent" and invitation["responded_at"] is None
    assert await _stamp(service, invitation_id, "unsubscribed_at") is None
    # A scanner's fetch of the pixel is a machine open, not a person's.
    assert await _stamp(service, invitation_id, "opened_at") is None


async def _invitations(service: ServiceUnderTest, tenant: TestTenant, customer: str) -> list[dict[str, Any]]:
    response = await service.client.get(
        "/v1/invitations", params={"customer": customer}, headers=tenant.headers
    )
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.json()["invitations"]
    return found


async def _request_many(kafka_bootstrap: str, tenant: TestTenant, count: int) -> list[uuid.UUID]:
    """``count`` survey requests for different people, in one go, as the trigger sends a batch."""
    ids = [uuid.uuid4() for _ in range(count)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for invitation_id in ids:
            customer = f"c-{uuid.uuid4().hex}"
            event = new_event(
                SURVEY_REQUESTED,
                tenant_id=tenant.tenant_id,
                data=SurveyRequested(
                    invitation_id=invitation_id,
                    customer_id=customer,
                    email=unique_address(),
                    name=None,
                    locale=None,
                    touchpoint="webshop-purchase",
                    trigger_event_id=f"order-{uuid.uuid4().hex[:8]}",
                    trigger_event_type="purchase.completed.v1",
                    send_at=datetime.now(UTC),
                ),
                subject=customer,
                source="/nps/trigger",
                event_id=str(invitation_id),
            )
            await producer.send(topics.SURVEY_REQUESTS, event.envelope.to_json(), key=customer.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return ids


async def test_a_company_of_500_behind_one_address_all_open_and_answer(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await survey_service(start_service)
    tenant = await provision_tenant(service.runtime)
    # The tenant's own sending rate only decides how long the test waits for the emails.
    settings = await service.client.put(
        "/v1/survey-settings", json={"send_rate_per_minute": 100_000}, headers=tenant.headers
    )
    assert settings.status_code == 200, settings.text
    people = await _request_many(kafka_bootstrap, tenant, 500)

    async def all_sent() -> bool:
        async with service.runtime.database.uow() as uow:
            sent = await uow.session.scalar(
                text("SELECT count(*) FROM survey.invitations WHERE tenant_id = :t AND sent_at IS NOT NULL"),
                {"t": tenant.tenant_id},
            )
        return bool(sent == len(people))

    await eventually(all_sent, within=120, interval=0.5)
    statuses: list[int] = []
    async with behind(service, "203.0.113.7") as office:
        for invitation_id in people:
            token = survey_token(SECRET, invitation_id)
            statuses.append((await office.get(f"/s/{token}/9")).status_code)
            statuses.append((await office.post(f"/s/{token}", data={"score": "9"})).status_code)
    assert statuses == [200] * 1000, sorted(set(statuses))
    async with service.runtime.database.uow() as uow:
        answered = await uow.session.scalar(
            text("SELECT count(*) FROM survey.invitations WHERE tenant_id = :t AND responded_at IS NOT NULL"),
            {"t": tenant.tenant_id},
        )
    assert answered == 500


async def test_a_client_guessing_links_gets_429_quickly_and_nobody_else_does(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service, tenant, customer, _, invitation_id = await asked_once(start_service, kafka_bootstrap)
    await invitation_in(service, tenant, customer, invitation_id, "sent")
    token = survey_token(SECRET, invitation_id)
    async with behind(service, an_address()) as guesser:
        statuses = [(await guesser.get(f"/s/{secrets.token_urlsafe(32)}")).status_code for _ in range(50)]
        # A few mistyped links are a person's; past them, the guessing stops.
        assert statuses[:10] == [404] * 10
        assert statuses[10:] == [429] * 40
        limited = await guesser.get(f"/s/{token}")
        # Even a real link: else a hit would still answer differently from a miss.
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "Too many requests" in limited.text
    async with behind(service, an_address()) as somebody_else:
        assert (await somebody_else.get(f"/s/{token}")).status_code == 200


async def test_the_pixel_of_a_limited_client_still_records_the_open(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service, tenant, customer, _, invitation_id = await asked_once(start_service, kafka_bootstrap)
    await invitation_in(service, tenant, customer, invitation_id, "sent")
    await _sent_an_hour_ago(service, invitation_id)
    token = survey_token(SECRET, invitation_id)
    async with behind(service, an_address()) as client:
        while (await client.get(f"/s/{secrets.token_urlsafe(32)}")).status_code != 429:
            pass
        assert (await client.get(f"/s/{token}")).status_code == 429
        for _ in range(2):
            pixel = await client.get(f"/o/{token}.gif", headers={"User-Agent": BROWSER})
            assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert await _stamp(service, invitation_id, "opened_at") is not None
    [opened] = await read_topic(kafka_bootstrap, topics.SURVEY_EVENTS, _opened(invitation_id), within=10)
    assert json.loads(opened.value)["data"]["machine"] is False


@asynccontextmanager
async def served(service: ServiceUnderTest) -> AsyncIterator[str]:
    """The service's app served by uvicorn as ``python -m services.survey`` serves it."""
    config = uvicorn.Config(create_app(service.runtime), **server_options(service.runtime.settings))
    config.lifespan = "off"  # the runtime is already started
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()
        return server.started

    try:
        await eventually(started, within=10, interval=0.05)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await serving


async def _guess_until_limited(client: httpx.AsyncClient, forwarded_for: str) -> None:
    for _ in range(50):
        guess = await client.get(
            f"/s/{secrets.token_urlsafe(32)}", headers={"X-Forwarded-For": forwarded_for}
        )
        if guess.status_code == 429:
            return
    raise AssertionError("50 guesses and no 429")


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limits(
    start_service: StartService,
) -> None:
    # Our load balancer connects from its own address; FORWARDED_ALLOW_IPS names it.
    balancer = a_loopback_address()
    trusting = await survey_service(
        start_service, fresh=True, http_port=free_port(), forwarded_allow_ips=balancer
    )
    async with served(trusting) as url, connecting_from(url, balancer) as proxy:
        await _guess_until_limited(proxy, an_address())
        other = await proxy.get("/s/" + "A" * 43, headers={"X-Forwarded-For": an_address()})
        assert other.status_code == 404

    # A balancer FORWARDED_ALLOW_IPS does not name: its X-Forwarded-For is not believed, so every
    # client behind it is the balancer.
    untrusting = await survey_service(
        start_service, fresh=True, http_port=free_port(), forwarded_allow_ips="192.0.2.254"
    )
    async with served(untrusting) as url, connecting_from(url, a_loopback_address()) as proxy:
        await _guess_until_limited(proxy, an_address())
        other = await proxy.get("/s/" + "A" * 43, headers={"X-Forwarded-For": an_address()})
        assert other.status_code == 429


async def test_an_apple_privacy_proxy_open_counts_as_a_machine_open_in_reporting(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service = await survey_service(start_service)
    reporting = await start_service(build_reporting, ReportingSettings)
    tenant = await provision_tenant(service.runtime, reporting.runtime)
    invited = []
    for _ in range(2):
        customer = f"c-{uuid.uuid4().hex}"
        invitation_id = await request_survey(
            kafka_bootstrap, tenant, customer=customer, email=unique_address()
        )
        await invitation_in(service, tenant, customer, invitation_id, "sent")
        await _sent_an_hour_ago(service, invitation_id)
        invited.append(survey_token(SECRET, invitation_id))
    apple_fetched, read_by_a_person = invited

    # Mail Privacy Protection: Apple's address, a bare user agent, whether or not anybody looks.
    async with behind(service, "17.58.101.7") as apple:
        fetched = await apple.get(f"/o/{apple_fetched}.gif", headers={"User-Agent": "Mozilla/5.0"})
        assert fetched.status_code == 200
    async with behind(service, an_address()) as person:
        await person.get(f"/o/{read_by_a_person}.gif", headers={"User-Agent": BROWSER})

    async def funnel(expected: dict[str, int]) -> dict[str, int] | None:
        response = await reporting.client.get("/v1/reports/summary", headers=tenant.headers)
        assert response.status_code == 200, response.text
        counts: dict[str, int] = response.json()["funnel"]
        return counts if all(counts[k] == v for k, v in expected.items()) else None

    seen = await eventually(lambda: funnel({"sent": 2, "opened": 1, "machine_opened": 1}))
    assert seen["opened"] == 1 and seen["machine_opened"] == 1

    # The person with Mail Privacy Protection reads it later from a browser: a person's open now.
    async with behind(service, an_address()) as person:
        await person.get(f"/o/{apple_fetched}.gif", headers={"User-Agent": BROWSER})
    await eventually(lambda: funnel({"sent": 2, "opened": 2, "machine_opened": 0}))


async def test_a_fetch_on_the_reminders_delivery_is_a_machine_open_too(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service = await survey_service(start_service, lifecycle_poll_seconds=0.2)
    tenant = await provision_tenant(service.runtime)
    settings = await service.client.put(
        "/v1/survey-settings", json={"reminder_after_days": 3}, headers=tenant.headers
    )
    assert settings.status_code == 200
    customer, address = f"c-{uuid.uuid4().hex}", unique_address()
    invitation_id = await request_survey(kafka_bootstrap, tenant, customer=customer, email=address)
    await email_to(smtp_sink.directory, address)
    # Recorded as sent (the sink can hold the email a moment before the sender records it, and
    # recording sets the reminder's time, which would undo the change below).
    await invitation_in(service, tenant, customer, invitation_id, "sent")
    # Sent three days ago; the reminder is due and goes out now.
    async with service.runtime.database.uow() as uow:
        await uow.session.execute(
            text(
                "UPDATE survey.invitations SET sent_at = sent_at - interval '3 days', "
                "reminder_due_at = now() - interval '1 minute' WHERE id = :id"
            ),
            {"id": invitation_id},
        )
        await uow.commit()

    async def reminded() -> bool:
        return await _stamp(service, invitation_id, "reminded_at") is not None

    await eventually(reminded)
    # The recipient's gateway fetches the reminder's images as it arrives.
    async with behind(service, an_address()) as gateway:
        fetched = await gateway.get(
            f"/o/{survey_token(SECRET, invitation_id)}.gif", headers={"User-Agent": BROWSER}
        )
        assert fetched.status_code == 200
    [opened] = await read_topic(kafka_bootstrap, topics.SURVEY_EVENTS, _opened(invitation_id), within=10)
    assert json.loads(opened.value)["data"]["machine"] is True
    assert await _stamp(service, invitation_id, "opened_at") is None
