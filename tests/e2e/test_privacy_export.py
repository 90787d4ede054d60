"""End to end: a customer's export (right of access) gathered by the trigger from the five
services running as `make run` runs them, each asked over HTTP with the caller's own key."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest

from tests.conftest import eventually
from tests.support.factories import purchase
from tests.support.stack import Stack, new_tenant

SERVICES = ("survey", "scoring", "alerting", "reporting")


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    # The session's shared stack (tests/e2e/conftest.py); the test's two tenants are its own.
    return shared_stack


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def _key_works_everywhere(client: httpx.AsyncClient, stack: Stack, auth: dict[str, str]) -> bool:
    statuses = [
        (await client.get(f"{stack.urls[name]}/v1/customers/nobody/data", headers=auth)).status_code
        for name in SERVICES
    ]
    return statuses == [200] * len(SERVICES)


async def _mail(stack: Stack, address: str) -> Any:
    return stack.mail_to(address)


async def test_the_export_holds_the_customers_purchase_score_comment_and_case_and_nothing_of_others(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    trigger = stack.urls["trigger"]
    tenant_a = await new_tenant(client, stack)
    tenant_b = await new_tenant(client, stack)
    for auth in (tenant_a, tenant_b):
        await eventually(partial(_key_works_everywhere, client, stack, auth), within=60)

    customer, email = f"c-{uuid.uuid4().hex[:8]}", f"jane-{uuid.uuid4().hex[:6]}@example.com"
    other, other_email = f"c-{uuid.uuid4().hex[:8]}", f"john-{uuid.uuid4().hex[:6]}@example.com"
    order = f"order-{uuid.uuid4().hex[:8]}"
    for who, address, order_id in ((customer, email, order), (other, other_email, None)):
        posted = await client.post(
            f"{trigger}/v1/events",
            json=purchase(who, email=address, order_id=order_id, amount="49.95", currency="DKK", name="Jane"),
            headers=tenant_a,
        )
        assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited"

    [message] = await eventually(lambda: _mail(stack, email), within=60)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    [link] = re.findall(r'href="(https?://[^"]+/s/[^"]+)/3"', html.get_content())
    comment = f"The parcel came a week late {uuid.uuid4().hex[:6]}."
    answered = await client.post(link, data={"score": "3", "comment": comment})
    assert answered.status_code == 200

    async def complete_export() -> Any:
        response = await client.get(f"{trigger}/v1/customers/{customer}/export", headers=tenant_a)
        if response.status_code != 200:
            return None
        body = response.json()
        ready = (
            body["scoring"]["scored_answers"]["items"]
            and body["alerting"]["cases"]["items"]
            and body["reporting"]["responses"]["items"]
            and body["reporting"]["cases"]["items"]
            and body["reporting"]["funnel"]["items"]
            and body["alerting"]["notifications"]["items"]
        )
        return body if ready else None

    export = await eventually(complete_export, within=60)
    assert export["customer_id"] == customer and export["generated_at"]
    [purchase_row] = export["trigger"]["purchases"]["items"]
    assert purchase_row["order_id"] == order and purchase_row["amount_minor"] == 4995
    assert purchase_row["currency"] == "DKK"
    [record] = export["trigger"]["customer"]["items"]
    assert record["email"] == email
    assert export["trigger"]["decisions"]["items"][0]["outcome"] == "invited"
    [scored] = export["scoring"]["scored_answers"]["items"]
    assert scored["score"] == 3
    [said] = export["survey"]["comments"]["items"]
    assert said["comment"] == comment
    assert export["survey"]["answers"]["items"][0]["score"] == 3
    assert export["survey"]["suppression"]["items"] == [{"unsubscribed": False}]
    [case] = export["alerting"]["cases"]["items"]
    assert case["customer_id"] == customer and case["score"] == 3 and case["comment"] == comment
    assert export["reporting"]["responses"]["items"][0]["comment"] == comment
    assert export["complete"] is True
    # What the trigger kept of the order, the funnel's facts, and the email about the case.
    [invitation] = export["survey"]["invitations"]["items"]
    [source] = export["trigger"]["source_records"]["items"]
    assert source["source_ref"] == f"order:{order}" and source["invitation_id"] == invitation["id"]
    clocks = export["trigger"]["touchpoints"]["items"]
    assert [clock["touchpoint"] for clock in clocks] == [invitation["touchpoint"]] == [source["touchpoint"]]
    funnel = export["reporting"]["funnel"]["items"]
    assert {(f["invitation_id"], f["step"]) for f in funnel} >= {(invitation["id"], "sent")}
    [email_about_case] = export["alerting"]["notifications"]["items"]
    assert email_about_case["kind"] == "case_opened" and comment in email_about_case["body"]
    assert "recipient" not in email_about_case
    # No other customer's data, and no survey token or its hash.
    text = str(export)
    assert other not in text and other_email not in text
    assert "token" not in text and link.rsplit("/", 1)[1] not in text

    # Tenant B asking for A's customer: nothing of A's, in the export or in any service's part.
    refused = await client.get(f"{trigger}/v1/customers/{customer}/export", headers=tenant_b)
    assert refused.status_code == 404 and refused.json()["error"] == "customer_not_found"
    assert email not in refused.text and comment not in refused.text
    for name in SERVICES:
        part = await client.get(f"{stack.urls[name]}/v1/customers/{customer}/data", headers=tenant_b)
        assert part.status_code == 200
        sections = part.json()["sections"]
        assert all(not s["items"] for n, s in sections.items() if n != "suppression"), name
        assert email not in part.text and comment not in part.text
