"""The closed loop as a CX team runs it, on real Postgres, Kafka and SMTP: people and a team made
over the API, routing rules by score band and the customer's country, round robin through the
team, the fallback, the team's Slack channel, the escalation chain to the team lead and the CX
manager (and to nobody of another tenant), a change of rules that leaves open cases alone, and the
morning digest."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import text

from libs.common.events import SURVEY_RESPONDED, SurveyContext, SurveyResponded, new_event
from services.alerting import handlers
from services.alerting.handlers.digest import queue_digests
from tests.conftest import Mailbox, ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_alerting_followups import _alerting, _body, _mail_to, _publish

pytestmark = pytest.mark.integration


class Receiver:
    """A chat webhook on this machine: it keeps what is posted to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        self.posts.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    server = await asyncio.start_server(hook._serve, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    async with server:
        yield hook


async def _api(sut: ServiceUnderTest, tenant: TestTenant, method: str, path: str, body: Any) -> Any:
    response = await sut.client.request(method, path, json=body, headers=tenant.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _people(sut: ServiceUnderTest, tenant: TestTenant) -> dict[str, dict[str, Any]]:
    made = {}
    for key, name, role in [
        ("ana", "Ana Agent", "agent"),
        ("bo", "Bo Agent", "agent"),
        ("lea", "Lea Lead", "team_lead"),
        ("max", "Max Manager", "cx_manager"),
        ("finn", "Finn Fallback", "agent"),
    ]:
        email = f"{key}-{uuid.uuid4().hex[:6]}@{tenant.name}.example"
        made[key] = await _api(sut, tenant, "POST", "/v1/users", {"email": email, "name": name, "role": role})
    team = await _api(
        sut, tenant, "POST", "/v1/teams", {"name": "Support DK", "lead_user_id": made["lea"]["id"]}
    )
    for key in ("ana", "bo"):
        await _api(sut, tenant, "PUT", f"/v1/teams/{team['id']}/members/{made[key]['id']}", None)
    made["team"] = team
    return made


def _answer(tenant: TestTenant, score: int, country: str, days_ago: float = 10) -> Any:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    data = SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id=customer,
        email=f"{customer}@shoppers.example",
        name="Jane Doe",
        touchpoint="webshop-purchase",
        score=score,
        comment="The parcel came broken.",
        responded_at=datetime.now(UTC) - timedelta(days=days_ago),
        context=SurveyContext(order_id=f"o-{customer}", attributes={"country": country}),
    )
    return new_event(
        SURVEY_RESPONDED, tenant_id=tenant.tenant_id, data=data, subject=customer, source="/tests"
    )


async def _cases_of(sut: ServiceUnderTest, tenant: TestTenant, count: int) -> list[dict[str, Any]]:
    listed = await sut.client.get("/v1/cases", params={"limit": 100}, headers=tenant.headers)
    cases: list[dict[str, Any]] = listed.json()["cases"] if listed.status_code == 200 else []
    return cases if len(cases) >= count else []


async def test_a_cx_team_routes_escalates_and_hears_of_its_cases(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox, receiver: Receiver
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    other = await provision_tenant(sut.runtime)
    people = await _people(sut, tenant)
    team_id = people["team"]["id"]

    # The team's Slack channel: the API takes only public https addresses.
    for url in (
        "http://hooks.slack.com/x",
        "https://127.0.0.1/x",
        "https://10.0.0.5/x",
        "https://localhost/x",
    ):
        refused = await sut.client.put(
            f"/v1/teams/{team_id}/webhooks", json={"slack": url}, headers=tenant.headers
        )
        assert refused.status_code == 422, (url, refused.text)
    shown = await _api(
        sut,
        tenant,
        "PUT",
        f"/v1/teams/{team_id}/webhooks",
        {"slack": "https://hooks.slack.com/services/T/B/secret"},
    )
    assert shown["slack_webhook"] == "https://hooks.slack.com/…"
    # This test's receiver is on this machine; the service under test may post to it (development).
    async with sut.runtime.database.uow() as uow:
        await uow.session.execute(
            text("UPDATE alerting.teams SET slack_webhook_url = :url WHERE id = :id"),
            {"url": f"http://127.0.0.1:{receiver.port}/hook", "id": uuid.UUID(team_id)},
        )
        await uow.commit()

    rules = {
        "rules": [
            {
                "name": "Urgent Denmark",
                "when": {"bands": ["urgent"], "attributes": {"country": ["dk"]}},
                "then": {"team": team_id, "strategy": "round_robin"},
            }
        ]
    }
    await _api(sut, tenant, "PUT", "/v1/routing/rules", rules)
    settings = {"fallback": {"user": people["finn"]["id"]}, "cx_manager_emails": []}
    await _api(sut, tenant, "PUT", "/v1/desk/settings", settings)
    # Another tenant's team cannot be a target.
    stolen = {"rules": [{"name": "x", "when": {}, "then": {"team": team_id}}]}
    assert (await sut.client.put("/v1/routing/rules", json=stolen, headers=other.headers)).status_code == 422

    for score, country in [(2, "DK"), (3, "DK"), (1, "DK"), (6, "DK")]:
        await _publish(kafka_bootstrap, _answer(tenant, score, country))
    cases = await eventually(lambda: _cases_of(sut, tenant, 4), within=30)
    by_score = {case["score"]: case for case in cases}

    # Round robin through the team in the order its members joined; the normal case to the fallback.
    # (The answers travel on different partitions, so which one comes first is not known.)
    owners = [str((by_score[score]["assignee"] or {}).get("name")) for score in (2, 3, 1)]
    assert sorted(owners) == ["Ana Agent", "Ana Agent", "Bo Agent"]
    assert by_score[6]["assignee"]["name"] == "Finn Fallback"
    assert 'rule 1 "Urgent Denmark"' in by_score[2]["routing_reason"]
    assert "fallback" in by_score[6]["routing_reason"]
    assert by_score[2]["priority"] == "urgent" and by_score[6]["priority"] == "normal"
    assert by_score[2]["order_id"].startswith("o-customer-")

    # The owner is emailed, with a link to the case on the desk; the team's channel hears of it too.
    ana = people["ana"]["email"]
    ana_cases = [c["id"] for c in cases if c["assignee"] and c["assignee"]["id"] == people["ana"]["id"]]
    assert all(c["owner_email"] == ana for c in cases if c["id"] in ana_cases)
    mails = await eventually(lambda: _opened_mails(smtp_sink, ana, len(ana_cases)), within=20)
    assert all("/desk/cases/" in _body(mail) for mail in mails)
    posts = await eventually(lambda: _posts(receiver, 3), within=20)
    assert all("/desk/cases/" in json.dumps(post) for post in posts)

    # Ten days on, nobody called: the breach, the team lead, then the CX manager; each once.
    async with sut.runtime.database.uow() as uow:
        await handlers.run_clock(uow, datetime.now(UTC) + timedelta(minutes=1))
        await uow.commit()
    lea, manager = people["lea"]["email"], people["max"]["email"]
    team_cases = {by_score[score]["id"] for score in (2, 3, 1)}
    lead_mails = await eventually(lambda: _escalations(smtp_sink, lea, "team lead", 3), within=20)
    assert {mail["X-NPS-Case-Id"] for mail in lead_mails} == team_cases
    manager_mails = await eventually(lambda: _escalations(smtp_sink, manager, "CX manager", 4), within=20)
    assert {mail["X-NPS-Case-Id"] for mail in manager_mails} == {case["id"] for case in cases}
    detail = await _api(sut, tenant, "GET", f"/v1/cases/{by_score[2]['id']}", None)
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert (
        kinds[:2] == ["opened", "routed"] and kinds.count("escalated") == 2 and kinds.count("breached") == 1
    )
    async with sut.runtime.database.uow() as uow:
        assert await handlers.run_clock(uow, datetime.now(UTC) + timedelta(minutes=2)) == 0
        await uow.commit()

    # New rules place only new cases: the open ones keep their owners.
    await _api(
        sut,
        tenant,
        "PUT",
        "/v1/routing/rules",
        {"rules": [{"name": "All to Bo", "when": {}, "then": {"user": people["bo"]["id"]}}]},
    )
    await _publish(kafka_bootstrap, _answer(tenant, 4, "SE", days_ago=0))
    after = await eventually(lambda: _cases_of(sut, tenant, 5), within=30)
    assert {c["id"]: c["assignee"]["name"] for c in after if c["id"] in team_cases} == {
        c["id"]: c["assignee"]["name"] for c in cases if c["id"] in team_cases
    }
    [new] = [c for c in after if c["id"] not in {c["id"] for c in cases}]
    assert new["assignee"]["name"] == "Bo Agent" and 'rule 1 "All to Bo"' in new["routing_reason"]

    # The morning digest: each person the open cases they may see, once a day.
    monday_morning = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    for _ in range(2):
        async with sut.runtime.database.uow() as uow:
            await queue_digests(uow, uuid.UUID(tenant.tenant_id), monday_morning, "http://desk.example")
            await uow.commit()
    (ana_digest,) = await eventually(lambda: _digests(smtp_sink, ana), within=20)
    assert "Your follow-up cases today: 3 open" in ana_digest["Subject"]  # her two and Bo's, her team's
    (manager_digest,) = await eventually(lambda: _digests(smtp_sink, manager), within=20)
    assert "5 open" in manager_digest["Subject"]
    assert not [m for m in _mail_to(smtp_sink, other.owner_email) if "Escalated" in str(m["Subject"])]


async def _opened_mails(smtp_sink: Mailbox, address: str, count: int) -> list[EmailMessage]:
    mails = [m for m in _mail_to(smtp_sink, address) if "Detractor" in str(m["Subject"])]
    return mails if len(mails) >= count else []


async def _posts(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    return receiver.posts if len(receiver.posts) >= count else []


async def _escalations(smtp_sink: Mailbox, address: str, level: str, count: int) -> list[EmailMessage]:
    mails = [m for m in _mail_to(smtp_sink, address) if f"Escalated to you ({level})" in str(m["Subject"])]
    return mails if len(mails) >= count else []


async def _digests(smtp_sink: Mailbox, address: str) -> list[EmailMessage]:
    return [m for m in _mail_to(smtp_sink, address) if "Your follow-up cases today" in str(m["Subject"])]
