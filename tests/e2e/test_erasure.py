"""End to end, the right to erasure: the stack as `make run` starts it, a customer who answered
with a comment and has a follow-up case with a note is erased through the trigger's API; afterwards
a dump of every service's schema holds no trace of their address, name, comment or note, another
customer's data is intact, the scores and the report count the same, the live score stream shows no
change, and the receipt (which names nobody) shows each of the five services done.

The races: an event about the customer from before the erasure that arrives afterwards is not taken
in again, one from after it is; a customer nobody has heard of gets a completed receipt with zero
counts, here asked for as a ``customer.erased.v1`` event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from libs.common.events import CUSTOMER_ERASED, ERASURE_SERVICES
from libs.common.topics import CUSTOMERS
from services.trigger.handlers.erasure import erasure_id_for
from tests.conftest import eventually, produce
from tests.support.factories import cloud_event, purchase
from tests.support.stack import Stack, new_tenant
from tests.support.webhook_receiver import Receiver, receiving

SCHEMAS = ("trigger", "survey", "scoring", "alerting", "reporting")


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    # The session's shared stack (tests/e2e/conftest.py): the case's owner is emailed the comment
    # 3 s after the answer, and that email is erased too; the tenant's webhook receiver is on this
    # machine, a private address. Each test's tenant is its own.
    return shared_stack


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as started:
        yield started


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as http:
        yield http


async def _async(value: Any) -> Any:
    return value


def _links(message: EmailMessage) -> dict[int, str]:
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    found = re.findall(r'href="(https?://[^"]+/s/[^"]+/(10|[0-9]))"', html.get_content())
    return {int(score): link for link, score in found}


async def _key_works_everywhere(client: httpx.AsyncClient, stack: Stack, auth: dict[str, str]) -> bool:
    paths = [
        f"{stack.urls['survey']}/v1/invitations?customer=x",
        f"{stack.urls['scoring']}/v1/nps",
        f"{stack.urls['alerting']}/v1/cases",
        f"{stack.urls['reporting']}/v1/reports/summary",
    ]
    return [(await client.get(path, headers=auth)).status_code for path in paths] == [200] * len(paths)


async def _bought_and_answered(
    client: httpx.AsyncClient,
    stack: Stack,
    auth: dict[str, str],
    customer: str,
    email: str,
    name: str,
    score: int,
    comment: str,
) -> str:
    """The customer buys, gets the survey email and answers; the survey link they used."""
    posted = await client.post(
        f"{stack.urls['trigger']}/v1/events",
        json=purchase(customer, email=email, name=name, locale="en-GB"),
        headers=auth,
    )
    assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited", posted.text
    [message] = await eventually(lambda: _async(stack.mail_to(email)), within=30)
    link = _links(message)[score]
    answered = await client.post(link.rsplit("/", 1)[0], data={"score": str(score), "comment": comment})
    assert answered.status_code == 200
    return link


class ScoreStream:
    """The reporting live stream (`GET /v1/nps/stream`), read in the background: every ``nps`` event's
    data, in order."""

    def __init__(self, client: httpx.AsyncClient, url: str, auth: dict[str, str]) -> None:
        self.cells: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self._task = asyncio.create_task(self._read(client, url, auth))

    async def _read(self, client: httpx.AsyncClient, url: str, auth: dict[str, str]) -> None:
        async with client.stream("GET", f"{url}/v1/nps/stream", headers=auth, timeout=None) as response:
            assert response.status_code == 200
            self.open.set()
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "nps":
                    self.cells.append(json.loads(line.partition(":")[2]))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_an_erased_customer_leaves_no_trace_and_the_counts_stay(
    stack: Stack, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    trigger, scoring, alerting, reporting = (
        stack.urls[n] for n in ("trigger", "scoring", "alerting", "reporting")
    )
    tag = uuid.uuid4().hex[:8]
    owner = f"owner-{tag}@shop.example"
    auth = await new_tenant(client, stack, owner_email=owner)
    await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)

    # The customer to erase: bought, answered 3 with a comment, has a case with a note.
    erased = {
        "customer": f"c-erase-{tag}",
        "email": f"ada-{tag}@example.com",
        "name": f"Ada Erasmus{tag}",
        "comment": f"The parcel came late {tag}, never again.",
        "note": f"Called Ada Erasmus{tag} twice about order {tag}.",
    }
    # Another customer, who stays.
    kept = {
        "customer": f"c-keep-{tag}",
        "email": f"bo-{tag}@example.com",
        "name": f"Bo Keeper{tag}",
        "comment": f"Lovely shop {tag}.",
    }
    # The tenant's CRM takes answers and cases as outbound webhooks: the comment is delivered, and
    # kept in alerting's delivery log, until the erasure.
    subscribed = await client.post(
        f"{alerting}/v1/webhook-endpoints",
        json={
            "url": receiver.url("/crm"),
            "event_types": ["response.recorded", "response.updated", "case.opened"],
        },
        headers=auth,
    )
    assert subscribed.status_code == 201, subscribed.text
    endpoint, secret = subscribed.json()["id"], subscribed.json()["secret"]
    link = await _bought_and_answered(
        client, stack, auth, erased["customer"], erased["email"], erased["name"], 3, erased["comment"]
    )
    await _bought_and_answered(
        client, stack, auth, kept["customer"], kept["email"], kept["name"], 9, kept["comment"]
    )

    async def the_case() -> Any:
        cases = (await client.get(f"{alerting}/v1/cases", headers=auth)).json()["cases"]
        return cases[0] if len(cases) == 1 else None

    case = await eventually(the_case, within=30)
    noted = await client.post(
        f"{alerting}/v1/cases/{case['id']}/notes", json={"text": erased["note"]}, headers=auth
    )
    assert noted.status_code == 200, noted.text
    # The owner's email about the case quotes the comment: it is in alerting's queue of emails.
    await eventually(lambda: _async(stack.mail_to(owner)), within=30)

    async def both_counted() -> Any:
        nps = (await client.get(f"{scoring}/v1/nps", headers=auth)).json()
        summary = (await client.get(f"{reporting}/v1/reports/summary", headers=auth)).json()
        done = nps["responses"] == 2 and summary["nps"] == 0 and summary["cases"]["open"] == 1
        return (nps, summary) if done else None

    nps_before, summary_before = await eventually(both_counted, within=30)

    async def delivered() -> Any:
        payloads = [item.verify(secret) for item in receiver.at("/crm")]
        seen = json.dumps(payloads)
        opened = any(payload["type"] == "case.opened" for payload in payloads)
        return payloads if opened and erased["comment"] in seen and kept["comment"] in seen else None

    # The receiver got the comment (the answer's update carries it), and the delivery log holds it.
    await eventually(delivered, within=30)
    scores_before = (await client.get(f"{reporting}/v1/reports/scores", headers=auth)).json()
    dumps_before = "".join(stack.pg_dump(schema) for schema in SCHEMAS)
    assert erased["email"] in dumps_before and erased["comment"] in dumps_before  # the check can see them

    stream = ScoreStream(client, reporting, auth)
    await asyncio.wait_for(stream.open.wait(), 15)
    try:
        # The erasure.
        asked = await client.delete(f"{trigger}/v1/customers/{erased['customer']}", headers=auth)
        assert asked.status_code == 202, asked.text
        erasure_id = asked.json()["erasure_id"]
        assert asked.json()["status"] == "pending"

        async def completed() -> Any:
            body = (await client.get(f"{trigger}/v1/erasures/{erasure_id}", headers=auth)).json()
            return body if body["status"] == "completed" else None

        receipt = await eventually(completed, within=60)
        assert {name: part["status"] for name, part in receipt["services"].items()} == dict.fromkeys(
            ERASURE_SERVICES, "completed"
        )
        assert receipt["services"]["survey"]["counts"]["invitations"] == 1
        assert receipt["services"]["survey"]["counts"]["responses"] == 1
        assert receipt["services"]["alerting"]["counts"]["cases"] == 1
        assert receipt["services"]["reporting"]["counts"]["responses"] == 1
        assert receipt["services"]["scoring"]["counts"]["answers"] == 1
        # Their answer's (recorded, then updated with the comment) and their case's deliveries.
        assert receipt["services"]["alerting"]["counts"]["webhook_deliveries"] >= 3
        assert receipt["services"]["trigger"]["counts"]["customers"] == 1
        assert receipt["completed_at"] is not None
        # The receipt names nobody.
        for personal in (erased["customer"], erased["email"], erased["name"], erased["comment"]):
            assert personal not in json.dumps(receipt)

        # No trace of them in any schema (tables, outboxes, held events); the other customer intact.
        dumps = {schema: stack.pg_dump(schema) for schema in SCHEMAS}
        everything = "".join(dumps.values())
        for what in ("email", "name", "comment", "note"):
            for schema, dump in dumps.items():
                assert erased[what] not in dump, f"{what} of the erased customer is still in {schema}"
        for what in ("email", "name", "comment"):
            assert kept[what] in everything, f"{what} of the other customer is gone"
        assert f"Called Ada Erasmus{tag}" not in everything

        # The delivery log keeps the other customer's answer and not theirs.
        log = await client.get(f"{alerting}/v1/webhook-endpoints/{endpoint}/deliveries", headers=auth)
        assert log.status_code == 200, log.text
        assert erased["comment"] not in log.text and erased["customer"] not in log.text

        # Their survey link is dead.
        assert (await client.get(link)).status_code == 404

        # The counts stay: the NPS, the report and every score cell.
        assert (await client.get(f"{scoring}/v1/nps", headers=auth)).json() == nps_before
        assert (await client.get(f"{reporting}/v1/reports/summary", headers=auth)).json() == summary_before
        assert (await client.get(f"{reporting}/v1/reports/scores", headers=auth)).json() == scores_before

        # The live stream showed no change: the next cell it shows is a new answer's, counted on top
        # of the two (had the erasure re-sent a cell, it would come first, with two answers).
        await _bought_and_answered(
            client, stack, auth, f"c-new-{tag}", f"cy-{tag}@example.com", "Cy", 10, "Fine."
        )
        first = await eventually(lambda: _async(stream.cells[:1]), within=30)
        assert sum(first[0]["distribution"]) == 3
    finally:
        await stream.close()

    # A purchase from before the erasure, arriving after it (a retried webhook): not taken in.
    before = (datetime.fromisoformat(receipt["requested_at"]) - timedelta(minutes=5)).isoformat()
    late = await client.post(
        f"{trigger}/v1/events",
        json=purchase(erased["customer"], email=erased["email"], name=erased["name"], occurred_at=before),
        headers=auth,
    )
    assert late.json()["results"][0] | {"id": None} == {
        "id": None,
        "status": "accepted",
        "decision": "skipped",
        "reason": "erased",
    }
    assert erased["email"] not in stack.pg_dump("trigger")
    # A purchase made after it is new data: decided as any other (here inside the rest period, which
    # the erasure kept: it protects the customer from being asked again soon).
    new = await client.post(
        f"{trigger}/v1/events",
        json=purchase(erased["customer"], email=erased["email"], occurred_at=datetime.now(UTC).isoformat()),
        headers=auth,
    )
    assert new.json()["results"][0]["status"] == "accepted"
    assert new.json()["results"][0].get("reason") != "erased"


async def test_erasing_a_customer_nobody_knows_completes_with_zero_counts(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    trigger = stack.urls["trigger"]
    auth = await new_tenant(client, stack)
    await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)
    stranger = f"c-nobody-{uuid.uuid4().hex[:8]}"
    # As an event (customer.erased.v1), the way a CRM sends it onto nps.customers.
    posted = await client.post(
        f"{trigger}/v1/events",
        json=cloud_event(CUSTOMER_ERASED, {"customer_id": stranger}, stranger),
        headers=auth,
    )
    assert posted.status_code == 202, posted.text
    [result] = posted.json()["results"]
    assert result["status"] == "accepted"

    async def completed() -> Any:
        body = (await client.get(f"{trigger}/v1/erasures/{result['erasure_id']}", headers=auth)).json()
        return body if body["status"] == "completed" else None

    receipt = await eventually(completed, within=60)
    assert set(receipt["services"]) == set(ERASURE_SERVICES)
    for part in receipt["services"].values():
        assert part["status"] == "completed"
        assert set(part["counts"].values()) <= {0}
    # Another tenant cannot read it.
    other = await new_tenant(client, stack)
    assert (
        await client.get(f"{trigger}/v1/erasures/{result['erasure_id']}", headers=other)
    ).status_code == 404


async def test_a_customer_erased_event_on_kafka_is_erased_too(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    trigger = stack.urls["trigger"]
    auth = await new_tenant(client, stack)
    await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)
    admin = {"X-Admin-Token": stack.admin_token}
    tenant_id = (await client.get(f"{trigger}/v1/admin/tenants", headers=admin)).json()[-1]["tenant_id"]
    stranger = f"c-kafka-{uuid.uuid4().hex[:8]}"
    event = cloud_event(CUSTOMER_ERASED, {"customer_id": stranger}, stranger, tenant=tenant_id)
    # As a CRM would send it: straight onto nps.customers.
    await produce(stack.state()["kafka"], CUSTOMERS, json.dumps(event).encode(), key=stranger.encode())
    # The receipt's id follows from the event's, so a redelivery makes no second erasure.
    erasure_id = erasure_id_for(tenant_id, event["id"])

    async def completed() -> Any:
        answer = await client.get(f"{trigger}/v1/erasures/{erasure_id}", headers=auth)
        done = answer.status_code == 200 and answer.json()["status"] == "completed"
        return answer.json() if done else None

    receipt = await eventually(completed, within=60)
    assert receipt["origin"] == "event"
    assert {part["status"] for part in receipt["services"].values()} == {"completed"}
