"""End to end: the stack started as `make run` starts it (supervisor, embedded Postgres, Tansu, SMTP
sink, five service processes), driven over HTTP and SMTP like a user."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from services.alerting.domain.sla import DEFAULT_POLICY, Priority, clock
from tests.conftest import eventually
from tests.e2e.conftest import SHARED_ENV
from tests.support.factories import purchase
from tests.support.stack import Stack, StackLauncher, new_tenant, ready, stack_launcher, stop


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    # The session's shared stack (tests/e2e/conftest.py), with the owner's email 3 s after an answer:
    # long enough for the "why" (posted with the score) to be in it, short for a test.
    return shared_stack


def _launcher(tmp_path_factory: pytest.TempPathFactory) -> StackLauncher:
    """A stack of a test's own, with the shared stack's settings: for the tests that stop it."""
    return stack_launcher(tmp_path_factory.mktemp("stack"), env=SHARED_ENV)


@pytest.fixture
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    launcher = _launcher(tmp_path_factory)
    try:
        yield launcher.start()
    finally:
        stop(launcher.processes)  # whatever a failed test left running


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as http:
        yield http


def survey_links(message: EmailMessage) -> list[str]:
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    return re.findall(r'href="(https?://[^"]+/s/[^"]+/(?:10|[0-9]))"', html.get_content())


async def test_purchase_to_survey_to_nps_to_follow_up_case(stack: Stack, client: httpx.AsyncClient) -> None:
    trigger, survey, scoring, alerting, reporting = (
        stack.urls[n] for n in ("trigger", "survey", "scoring", "alerting", "reporting")
    )
    owner = f"owner-{uuid.uuid4().hex[:6]}@shop.example"
    auth = await new_tenant(client, stack, owner_email=owner)

    await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)

    # 1. A purchase over HTTP.
    customer, email = f"c-{uuid.uuid4().hex[:8]}", f"jane-{uuid.uuid4().hex[:6]}@example.com"
    posted = await client.post(
        f"{trigger}/v1/events", json=purchase(customer, email=email, locale="en-GB"), headers=auth
    )
    assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited"

    # 2. The email arrives; its links are one-click buttons 0..10. Following one records nothing.
    [message] = await eventually(lambda: _async(stack.mail_to(email)), within=30)
    links = survey_links(message)
    assert len(links) == 11
    page = await client.get(links[3])
    assert page.status_code == 200 and "recommend" in page.text
    invitation = (
        await client.get(f"{survey}/v1/invitations", params={"customer": customer}, headers=auth)
    ).json()
    assert _first_invitation(invitation)["responded_at"] is None

    # 3. Answer 3: NPS -100 and one open case due 24 h after the answer.
    token_url = links[3].rsplit("/", 1)[0]
    answered = await client.post(token_url, data={"score": "3", "comment": "The parcel came a week late."})
    assert answered.status_code == 200

    async def nps_is_minus_100() -> bool:
        body = (await client.get(f"{scoring}/v1/nps", headers=auth)).json()
        return bool(body["nps"] == -100 and body["responses"] == 1)

    await eventually(nps_is_minus_100, within=30)

    async def one_open_case() -> Any:
        cases = (await client.get(f"{alerting}/v1/cases", headers=auth)).json()["cases"]
        return cases if len(cases) == 1 else None

    [case] = await eventually(one_open_case, within=30)
    assert case["status"] == "open" and case["score"] == 3 and case["customer_id"] == customer
    # A new tenant's SLA: score 3 is urgent, first contact within 4 business hours (Mon-Fri 09-17 UTC).
    opened = datetime.fromisoformat(case["opened_at"])
    assert (
        datetime.fromisoformat(case["due_at"])
        == clock(opened, Priority.URGENT, DEFAULT_POLICY).first_contact_due
    )
    [owner_mail] = await eventually(lambda: _async(stack.mail_to(owner)), within=30)
    owner_text = owner_mail.get_body(("plain",))
    assert owner_text is not None and "The parcel came a week late." in owner_text.get_content()

    async def summary_is_complete() -> Any:
        body = (await client.get(f"{reporting}/v1/reports/summary", headers=auth)).json()
        done = body["nps"] == -100 and body["invitations_sent"] == 1 and body["cases"]["open"] == 1
        return body if done else None

    summary = await eventually(summary_is_complete, within=30)
    assert summary["response_rate"] == 1.0

    # 4. A second purchase inside the rest period: no email, and the skip is recorded.
    again = await client.post(
        f"{trigger}/v1/events", json=purchase(customer, email=email, locale="en-GB"), headers=auth
    )
    assert again.json()["results"][0] | {"id": None} == {
        "id": None,
        "status": "accepted",
        "decision": "skipped",
        "reason": "rest_period",
        "touchpoint": "webshop-purchase",
    }
    decisions = (
        await client.get(f"{trigger}/v1/decisions", params={"customer": customer}, headers=auth)
    ).json()
    assert [(d["outcome"], d["reason"]) for d in decisions["decisions"]] == [
        ("skipped", "rest_period"),
        ("invited", None),
    ]

    # 5. kill -9 the survey service, accept a purchase while it is down: after the restart the
    #    pending invitation is sent exactly once.
    survey_pid = stack.pid("survey")
    os.kill(survey_pid, signal.SIGKILL)
    other, other_email = f"c-{uuid.uuid4().hex[:8]}", f"john-{uuid.uuid4().hex[:6]}@example.com"
    posted = await client.post(
        f"{trigger}/v1/events", json=purchase(other, email=other_email, locale="en-GB"), headers=auth
    )
    assert posted.json()["results"][0]["decision"] == "invited"
    await eventually(lambda: _async(stack.pid("survey") != survey_pid and ready(survey)), within=60)
    await eventually(lambda: _async(stack.mail_to(other_email)), within=60)

    async def both_sent_reported() -> bool:
        body = (await client.get(f"{reporting}/v1/reports/summary", headers=auth)).json()
        return body["invitations_sent"] == 2  # type: ignore[no-any-return]

    await eventually(both_sent_reported, within=30)
    assert len(stack.mail_to(other_email)) == 1
    assert len(stack.mail_to(email)) == 1

    # 6. The closed loop of consent: one click on the email's List-Unsubscribe (RFC 8058) reaches
    #    the trigger, which then never asks that address again, under any customer id.
    [other_message] = stack.mail_to(other_email)
    unsubscribe_url = other_message["List-Unsubscribe"].strip().strip("<>")
    one_click = await client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200

    async def trigger_heard_of_it() -> bool:
        body = (await client.get(f"{trigger}/v1/decisions", params={"customer": other}, headers=auth)).json()
        return any(d["reason"] == "unsubscribed" for d in body["decisions"])

    await eventually(trigger_heard_of_it, within=30)
    new_id = await client.post(
        f"{trigger}/v1/events",
        json=purchase(f"c-{uuid.uuid4().hex[:8]}", email=other_email, locale="en-GB"),
        headers=auth,
    )
    assert new_id.json()["results"][0]["reason"] == "unsubscribed"
    assert len(stack.mail_to(other_email)) == 1


def test_stopping_the_stack_stops_every_process(own_stack: Stack) -> None:
    pids = [service["pid"] for service in own_stack.state()["services"].values()]
    own_stack.process.send_signal(signal.SIGTERM)
    assert own_stack.process.wait(60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    leftovers = subprocess.run(["pgrep", "-f", str(own_stack.data_dir)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def _first_invitation(body: Any) -> dict[str, Any]:
    invitations = body["invitations"] if isinstance(body, dict) else body
    return invitations[0]  # type: ignore[no-any-return]


async def _async(value: Any) -> Any:
    return value


async def _key_works_everywhere(client: httpx.AsyncClient, stack: Stack, auth: dict[str, str]) -> bool:
    """Whether every service has heard of the key (the tenancy events reach them over Kafka)."""
    paths = [
        f"{stack.urls['survey']}/v1/invitations?customer=x",
        f"{stack.urls['scoring']}/v1/nps",
        f"{stack.urls['alerting']}/v1/cases",
        f"{stack.urls['reporting']}/v1/reports/summary",
    ]
    statuses = [(await client.get(path, headers=auth)).status_code for path in paths]
    return statuses == [200] * len(paths)


async def _a_detractor_asked_twice(client: httpx.AsyncClient, stack: Stack) -> tuple[dict[str, str], str]:
    """A new tenant whose customer bought, answered 3 (an NPS of -100 and an open case) and bought
    again inside the rest period (a second decision); the tenant's key headers and the customer."""
    trigger, scoring, alerting = (stack.urls[n] for n in ("trigger", "scoring", "alerting"))
    auth = await new_tenant(client, stack)
    await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)
    customer, email = f"c-{uuid.uuid4().hex[:8]}", f"jane-{uuid.uuid4().hex[:6]}@example.com"
    posted = await client.post(
        f"{trigger}/v1/events", json=purchase(customer, email=email, locale="en-GB"), headers=auth
    )
    assert posted.json()["results"][0]["decision"] == "invited"
    [message] = await eventually(lambda: _async(stack.mail_to(email)), within=30)
    token_url = survey_links(message)[3].rsplit("/", 1)[0]
    assert (await client.post(token_url, data={"score": "3"})).status_code == 200

    async def scored_and_opened() -> bool:
        nps = (await client.get(f"{scoring}/v1/nps", headers=auth)).json()
        cases = (await client.get(f"{alerting}/v1/cases", headers=auth)).json()["cases"]
        return bool((nps["nps"], nps["responses"]) == (-100, 1) and len(cases) == 1)

    await eventually(scored_and_opened, within=30)
    again = await client.post(
        f"{trigger}/v1/events", json=purchase(customer, email=email, locale="en-GB"), headers=auth
    )
    assert again.json()["results"][0]["reason"] == "rest_period"
    return auth, customer


async def test_a_second_run_after_a_stop_keeps_the_data(
    tmp_path_factory: pytest.TempPathFactory, client: httpx.AsyncClient
) -> None:
    # A stack of this test's own, so that it needs no other test to have run first.
    launcher = _launcher(tmp_path_factory)
    try:
        first = await asyncio.to_thread(launcher.start)
        auth, customer = await _a_detractor_asked_twice(client, first)
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 60) == 0
        again = await asyncio.to_thread(launcher.start)
        try:
            nps = (await client.get(f"{again.urls['scoring']}/v1/nps", headers=auth)).json()
            assert (nps["nps"], nps["responses"]) == (-100, 1)
            cases = (await client.get(f"{again.urls['alerting']}/v1/cases", headers=auth)).json()["cases"]
            assert [case["customer_id"] for case in cases] == [customer]
            decisions = await client.get(
                f"{again.urls['trigger']}/v1/decisions", params={"customer": customer}, headers=auth
            )
            assert len(decisions.json()["decisions"]) == 2
        finally:
            again.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(again.process.wait, 60) == 0
    finally:
        stop(launcher.processes)
