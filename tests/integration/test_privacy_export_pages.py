"""The whole export, however much a customer holds: every service's part is read a page at a time
over real HTTP (each service served by uvicorn as ``python -m services.<name>`` serves it) and the
trigger streams one document out. Rows are written straight into each service's tables, as many as
a long-standing customer has, so that sections run to more than one page without minutes of events.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import insert

from libs.common.app import create_app
from libs.common.privacy import SECTION_LIMIT
from libs.devstack.ports import free_port
from services.alerting import models as alerting
from services.alerting.config import AlertingSettings
from services.alerting.main import build as build_alerting
from services.reporting import models as reporting
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.scoring import models as scoring
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from services.survey import models as survey
from services.trigger import models as trigger
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_privacy_retention import ALERTING, POLL
from tests.integration.test_survey_flow import survey_service

SERVICES = ("survey", "scoring", "alerting", "reporting")
#: Fixed for the module, so its tests share one trigger (its settings name these ports).
PORTS = {name: free_port() for name in (*SERVICES, "trigger")}
#: Rows a big customer has in its long sections: more than one page of each.
MANY = int(1.5 * SECTION_LIMIT)


@dataclass
class Platform:
    """The five services, each served over HTTP, and a tenant (with a key) known to all."""

    services: dict[str, ServiceUnderTest]
    trigger_url: str
    servers: dict[str, tuple[uvicorn.Server, asyncio.Task[None]]]

    async def stop(self, name: str) -> None:
        server, serving = self.servers[name]
        server.should_exit = True
        await serving


@asynccontextmanager
async def _served(
    service: ServiceUnderTest, port: int
) -> AsyncIterator[tuple[uvicorn.Server, asyncio.Task[None]]]:
    config = uvicorn.Config(
        create_app(service.runtime), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    config.lifespan = "off"  # the runtime is already started
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()
        return server.started

    try:
        await eventually(started, within=10, interval=0.05)
        yield server, serving
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def _platform(start_service: StartService) -> AsyncIterator[Platform]:
    urls = {f"{name}_api_url": f"http://127.0.0.1:{PORTS[name]}" for name in SERVICES}
    services = {
        "survey": await survey_service(start_service, **POLL),
        "scoring": await start_service(build_scoring, ScoringSettings),
        "alerting": await start_service(build_alerting, AlertingSettings, **ALERTING),
        "reporting": await start_service(build_reporting, ReportingSettings, **POLL),
        "trigger": await start_service(build_trigger, TriggerSettings, **urls, export_timeout_seconds=10.0),
    }
    async with AsyncExitStack() as stack:
        servers = {
            name: await stack.enter_async_context(_served(service, PORTS[name]))
            for name, service in services.items()
        }
        yield Platform(services, f"http://127.0.0.1:{PORTS['trigger']}", servers)


async def _tenant(platform: Platform) -> TestTenant:
    runtimes = [service.runtime for service in platform.services.values()]
    return await provision_tenant(runtimes[-1], *runtimes[:-1])


# --- Rows, written as each service writes them ---------------------------------------------------


@dataclass
class Held:
    """What one customer of one tenant was given, by the values a test finds them by."""

    tenant_id: uuid.UUID
    customer_id: str
    invitations: list[uuid.UUID]
    responses: list[uuid.UUID]
    comments: list[str]
    case_id: uuid.UUID
    notification_subjects: list[str]
    timeline_bodies: list[str]
    delivery_ids: list[uuid.UUID]
    decision_events: list[str]
    source_refs: list[str]
    touchpoints: list[str]
    staff_address: str


async def _write(service: ServiceUnderTest, rows: Sequence[tuple[Any, list[dict[str, Any]]]]) -> None:
    async with service.runtime.database.uow() as uow:
        for table, values in rows:
            if values:
                await uow.session.execute(insert(table), values)
        await uow.commit()


async def _hold(platform: Platform, tenant: TestTenant, customer: str, *, answers: int, extra: int) -> Held:
    """Give a customer ``answers`` invitations, answers (each with a comment) and their facts in
    scoring and reporting, and ``extra`` rows in each of alerting's and the trigger's kinds."""
    tenant_id = uuid.UUID(tenant.tenant_id)
    tag = uuid.uuid4().hex[:8]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(max(answers, extra))]
    invitations = [uuid.uuid4() for _ in range(answers)]
    responses = [uuid.uuid4() for _ in range(answers)]
    comments = [f"said {tag} {i}" for i in range(answers)]
    case_id = uuid.uuid4()
    staff = f"owner-{tag}@staff.example"
    held = Held(
        tenant_id=tenant_id,
        customer_id=customer,
        invitations=invitations,
        responses=responses,
        comments=comments,
        case_id=case_id,
        notification_subjects=[f"Case {tag} {i}" for i in range(extra)],
        timeline_bodies=[f"routed {tag} {i}" for i in range(extra)],
        delivery_ids=[uuid.uuid4() for _ in range(extra)],
        decision_events=[f"evt-{tag}-{i}" for i in range(extra)],
        source_refs=[f"order:{tag}-{i}" for i in range(extra)],
        touchpoints=[f"tp-{tag}-{i}" for i in range(min(extra, 3))],
        staff_address=staff,
    )
    await _write(
        platform.services["survey"],
        [
            (
                survey.Invitation,
                [
                    {
                        "id": invitation,
                        "tenant_id": tenant_id,
                        "customer_id": customer,
                        "email": f"{tag}@customer.example",
                        "touchpoint": "purchase",
                        "trigger_event_id": f"evt-{invitation}",
                        "token_hash": secrets.token_hex(32),
                        "status": "responded",
                        "send_at": at,
                        "expires_at": at + timedelta(days=30),
                        "created_at": at,
                    }
                    for invitation, at in zip(invitations, times, strict=False)
                ],
            ),
            (
                survey.Response,
                [
                    {
                        "id": response,
                        "invitation_id": invitation,
                        "tenant_id": tenant_id,
                        "customer_id": customer,
                        "touchpoint": "purchase",
                        "score": i % 11,
                        "comment": comment,
                        "responded_at": at,
                    }
                    for i, (response, invitation, comment, at) in enumerate(
                        zip(responses, invitations, comments, times, strict=False)
                    )
                ],
            ),
        ],
    )
    await _write(
        platform.services["scoring"],
        [
            (
                scoring.ScoredAnswer,
                [
                    {
                        "tenant_id": tenant_id,
                        "response_id": response,
                        "touchpoint": "purchase",
                        "score": i % 11,
                        "revision": 1,
                        "updated_at": at,
                        "responded_on": at.date(),
                        "segments": [],
                        "spend": [],
                        "customer_id": customer,
                    }
                    for i, (response, at) in enumerate(zip(responses, times, strict=False))
                ],
            )
        ],
    )
    await _write(
        platform.services["reporting"],
        [
            (
                reporting.InvitationSent,
                [
                    {
                        "tenant_id": tenant_id,
                        "invitation_id": invitation,
                        "touchpoint": "purchase",
                        "sent_at": at,
                    }
                    for invitation, at in zip(invitations, times, strict=False)
                ],
            ),
            (
                reporting.InvitationStep,
                [
                    {
                        "tenant_id": tenant_id,
                        "invitation_id": invitation,
                        "step": "opened",
                        "touchpoint": "purchase",
                        "at": at + timedelta(hours=1),
                    }
                    for invitation, at in zip(invitations[:extra], times, strict=False)
                ],
            ),
        ],
    )
    endpoint_id = uuid.uuid4()
    await _write(
        platform.services["alerting"],
        [
            (
                alerting.FollowupCase,
                [
                    {
                        "id": case_id,
                        "tenant_id": tenant_id,
                        "response_id": responses[0],
                        "invitation_id": invitations[0],
                        "customer_id": customer,
                        "touchpoint": "purchase",
                        "score": 2,
                        "comment": comments[0],
                        "status": "open",
                        "owner_email": staff,
                        "opened_at": start,
                        "due_at": start + timedelta(days=1),
                        "updated_at": start,
                    }
                ],
            ),
            (
                alerting.CaseEvent,
                [
                    {
                        "tenant_id": tenant_id,
                        "case_id": case_id,
                        "at": at,
                        "kind": "routed",
                        "actor": "system",
                        "body": body,
                    }
                    for body, at in zip(held.timeline_bodies, times, strict=False)
                ],
            ),
            (
                alerting.Notification,
                [
                    {
                        "tenant_id": tenant_id,
                        "case_id": case_id,
                        "kind": "case_opened",
                        "recipient": staff,
                        "dedup_key": f"{case_id}:{i}",
                        "subject": subject,
                        "body": f"{customer} wrote: {comments[0]}",
                        "attempts": 1,
                        "sent_at": at,
                    }
                    for i, (subject, at) in enumerate(zip(held.notification_subjects, times, strict=False))
                ],
            ),
            (
                alerting.WebhookEndpoint,
                [
                    {
                        "id": endpoint_id,
                        "tenant_id": tenant_id,
                        "url": "https://hooks.example/nps",
                        "event_types": ["case.opened"],
                        "enabled": True,
                        "secret": secrets.token_hex(16),
                        "created_at": start,
                        "updated_at": start,
                    }
                ],
            ),
            (
                alerting.WebhookDelivery,
                [
                    {
                        "message_id": message,
                        "tenant_id": tenant_id,
                        "endpoint_id": endpoint_id,
                        "event_type": "case.opened",
                        "event_key": f"{message}:case.opened",
                        "customer_id": customer,
                        "ordering_key": str(case_id),
                        "payload": {"type": "case.opened", "data": {"customer_id": customer}},
                        "state": "delivered",
                        "delivered_at": at,
                    }
                    for message, at in zip(held.delivery_ids, times, strict=False)
                ],
            ),
        ],
    )
    await _write(
        platform.services["trigger"],
        [
            (trigger.Customer, [{"tenant_id": tenant_id, "customer_id": customer, "last_event_at": start}]),
            (
                trigger.CustomerTouchpoint,
                [
                    {
                        "tenant_id": tenant_id,
                        "customer_id": customer,
                        "touchpoint": name,
                        "last_invited_at": start,
                    }
                    for name in held.touchpoints
                ],
            ),
            (
                trigger.Decision,
                [
                    {
                        "tenant_id": tenant_id,
                        "event_id": event,
                        "event_type": "purchase.completed.v1",
                        "customer_id": customer,
                        "outcome": "skipped",
                        "reason": "rest_period",
                        "rest_period_days": 90,
                        "decided_at": at,
                    }
                    for event, at in zip(held.decision_events, times, strict=False)
                ],
            ),
            (
                trigger.SourceRecord,
                [
                    {
                        "tenant_id": tenant_id,
                        "source_ref": ref,
                        "touchpoint": "purchase",
                        "customer_id": customer,
                        "invitation_id": invitation,
                        "decided_at": at,
                    }
                    for ref, invitation, at in zip(held.source_refs, invitations, times, strict=False)
                ],
            ),
        ],
    )
    return held


async def _export(platform: Platform, tenant: TestTenant, customer: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.get(
            f"{platform.trigger_url}/v1/customers/{customer}/export", headers=tenant.headers
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    assert document["complete"] is True and document["customer_id"] == customer
    return document


def _items(document: dict[str, Any], part: str, section: str) -> list[dict[str, Any]]:
    found = document[part][section]
    assert found["truncated"] is False, (part, section)
    items: list[dict[str, Any]] = found["items"]
    return items


# --- The tests -----------------------------------------------------------------------------------


async def test_the_export_holds_the_emails_funnel_source_records_and_webhooks_of_the_customer_only(
    start_service: StartService,
) -> None:
    async with _platform(start_service) as platform:
        tenant, other_tenant = await _tenant(platform), await _tenant(platform)
        customer, neighbour = f"c-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
        mine = await _hold(platform, tenant, customer, answers=3, extra=3)
        # Another customer of the tenant, and the same customer id at another tenant.
        others = [
            await _hold(platform, tenant, neighbour, answers=2, extra=2),
            await _hold(platform, other_tenant, customer, answers=2, extra=2),
        ]

        document = await _export(platform, tenant, customer)

    notifications = _items(document, "alerting", "notifications")
    assert sorted(n["subject"] for n in notifications) == sorted(mine.notification_subjects)
    assert {n["status"] for n in notifications} == {"sent"} and {n["kind"] for n in notifications} == {
        "case_opened"
    }
    assert all(mine.comments[0] in n["body"] and n["sent_at"] and n["created_at"] for n in notifications)
    timeline = _items(document, "alerting", "timeline")
    assert sorted(e["body"] for e in timeline) == sorted(mine.timeline_bodies)
    deliveries = _items(document, "alerting", "webhook_deliveries")
    assert sorted(d["message_id"] for d in deliveries) == sorted(map(str, mine.delivery_ids))
    funnel = _items(document, "reporting", "funnel")
    assert sorted((f["invitation_id"], f["step"]) for f in funnel) == sorted(
        [(str(i), "sent") for i in mine.invitations] + [(str(i), "opened") for i in mine.invitations]
    )
    records = _items(document, "trigger", "source_records")
    assert sorted(r["source_ref"] for r in records) == sorted(mine.source_refs)
    assert {r["invitation_id"] for r in records} == {str(i) for i in mine.invitations}
    touchpoints = _items(document, "trigger", "touchpoints")
    assert sorted(t["touchpoint"] for t in touchpoints) == sorted(mine.touchpoints)
    assert [c["id"] for c in _items(document, "alerting", "cases")] == [str(mine.case_id)]
    # Nothing of the neighbour's nor of the other tenant's, and no staff address.
    text = json.dumps(document)
    for other in others:
        for value in (
            *other.notification_subjects,
            *other.timeline_bodies,
            *map(str, other.delivery_ids),
            *map(str, other.invitations),
            *other.source_refs,
            *other.touchpoints,
            *other.comments,
            str(other.case_id),
        ):
            assert value not in text
    assert mine.staff_address not in text


async def test_a_customer_with_more_than_a_page_in_every_long_section_gets_all_of_it_in_one_call(
    start_service: StartService,
) -> None:
    async with _platform(start_service) as platform:
        tenant = await _tenant(platform)
        customer = f"c-{uuid.uuid4().hex[:8]}"
        mine = await _hold(platform, tenant, customer, answers=MANY, extra=MANY)
        neighbour = await _hold(platform, tenant, f"c-{uuid.uuid4().hex[:8]}", answers=5, extra=5)

        document = await _export(platform, tenant, customer)

    def ids(part: str, section: str, key: str) -> list[str]:
        return [str(item[key]) for item in _items(document, part, section)]

    invitations, responses = sorted(map(str, mine.invitations)), sorted(map(str, mine.responses))
    assert sorted(ids("survey", "invitations", "id")) == invitations
    assert sorted(ids("survey", "answers", "response_id")) == responses
    assert sorted(ids("survey", "comments", "comment")) == sorted(mine.comments)
    assert sorted(ids("scoring", "scored_answers", "response_id")) == responses
    assert sorted(
        f["invitation_id"] for f in _items(document, "reporting", "funnel") if f["step"] == "sent"
    ) == (invitations)
    assert sorted(ids("alerting", "notifications", "subject")) == sorted(mine.notification_subjects)
    assert sorted(ids("alerting", "timeline", "body")) == sorted(mine.timeline_bodies)
    assert sorted(ids("alerting", "webhook_deliveries", "message_id")) == sorted(map(str, mine.delivery_ids))
    assert sorted(ids("trigger", "decisions", "event_id")) == sorted(mine.decision_events)
    assert sorted(ids("trigger", "source_records", "source_ref")) == sorted(mine.source_refs)
    # Newest first, as each page is.
    answered = [item["responded_at"] for item in _items(document, "survey", "answers")]
    assert answered == sorted(answered, reverse=True)
    text = json.dumps(document)
    assert not any(value in text for value in (*neighbour.comments, *map(str, neighbour.invitations)))


async def test_a_service_failing_once_the_document_has_begun_leaves_it_unfinished(
    start_service: StartService,
) -> None:
    async with _platform(start_service) as platform:
        tenant = await _tenant(platform)
        customer = f"c-{uuid.uuid4().hex[:8]}"
        await _hold(platform, tenant, customer, answers=MANY, extra=MANY)

        received = b""
        failed: Exception | None = None
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream(
                "GET", f"{platform.trigger_url}/v1/customers/{customer}/export", headers=tenant.headers
            ) as response,
        ):
            # Every service answered the first look: the document has begun...
            assert response.status_code == 200
            chunks = response.aiter_bytes()
            received += await anext(chunks)
            # ...and reporting, whose part comes last, goes down before the trigger reaches it.
            await platform.stop("reporting")
            try:
                async for chunk in chunks:
                    received += chunk
            except httpx.HTTPError as error:
                failed = error

    assert received.startswith(b'{"customer_id": ')
    assert failed is not None, "the body ended as if it were whole"
    assert b'"complete": true' not in received
    try:
        json.loads(received)
    except ValueError:
        pass
    else:
        raise AssertionError("what the client holds parses as a document")
