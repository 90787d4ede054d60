"""The case desk's pages over HTTP, as a browser gets them: the lists and a case for a signed-in
person, sign-in first for anybody else, CSRF-checked forms, agents kept to their own cases, and a
customer's text shown as text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from libs.common.app import create_app
from libs.common.sessions import COOKIE, csrf_token
from tests.conftest import ServiceUnderTest, StartService, TestTenant, provision_tenant
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_case_desk_api import _one_case
from tests.support.desk import make_team, make_user, sign_in_cookie

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _browser(
    sut: ServiceUnderTest, cookies: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own, carrying one person's cookie (the shared client carries none)."""
    transport = httpx.ASGITransport(app=create_app(sut.runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookies
    ) as client:
        yield client


async def _agent_case(
    sut: ServiceUnderTest, tenant: TestTenant, kafka_bootstrap: str, comment: str = "Late again."
) -> tuple[str, dict[str, str]]:
    """A case assigned to a new agent, and that agent's session cookie."""
    case_id = await _one_case(sut, tenant, kafka_bootstrap, comment=comment)
    agent = await make_user(sut.runtime, tenant.tenant_id, name="Ann Agent")
    assigned = await sut.client.post(
        f"/v1/cases/{case_id}/assign", json={"user_id": str(agent)}, headers=tenant.headers
    )
    assert assigned.status_code == 200
    return case_id, await sign_in_cookie(sut.runtime, tenant.tenant_id, agent, name="Ann Agent")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


async def test_the_lists_and_the_case_render_for_a_signed_in_agent(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id, cookie = await _agent_case(sut, tenant, kafka_bootstrap)
    async with _browser(sut, cookie) as browser:
        listed = await browser.get("/desk")
        assert listed.status_code == 200
        assert "Content-Security-Policy" in listed.headers
        assert "unsafe-inline" not in listed.headers["Content-Security-Policy"]
        assert f'href="/desk/cases/{case_id}"' in listed.text
        assert "Jane Doe" in listed.text and "My cases" in listed.text and "urgent" in listed.text
        assert "?tab=all" not in listed.text  # agents have no "All" tab
        # One sign-in for both pages: the desk links to the report, and a person can sign out.
        assert 'href="/report"' in listed.text and 'action="/signout"' in listed.text
        to_report = await browser.get("/report")
        assert to_report.status_code == 303
        assert to_report.headers["location"] == f"{sut.runtime.settings.report_public_url}/"
        page = await browser.get(f"/desk/cases/{case_id}")
        assert page.status_code == 200
        assert "Late again." in page.text and "Log a contact" in page.text
        for field in ("contact-channel", "contact-outcome", "resolve-cause", "resolve-text", "note-text"):
            assert f'<label for="{field}">' in page.text
        assert "Ann Agent (1 open)" in page.text  # whom to give a case to, by their load
        css = await browser.get("/desk/assets/desk.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert (await browser.get("/desk/assets/secrets.txt")).status_code == 404
        signed_out = await browser.post("/signout", data={"csrf_token": _csrf(listed.text)})
        assert signed_out.status_code == 303
        assert (await browser.get("/desk")).status_code == 303  # the session is over


async def test_forms_act_then_redirect_and_errors_show_on_the_page(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id, cookie = await _agent_case(sut, tenant, kafka_bootstrap)
    path = f"/desk/cases/{case_id}"
    async with _browser(sut, cookie) as browser:
        token = _csrf((await browser.get(path)).text)
        noted = await browser.post(f"{path}/notes", data={"csrf_token": token, "text": "Called twice"})
        assert noted.status_code == 303 and noted.headers["location"] == path
        contact = {"csrf_token": token, "channel": "phone", "outcome": "reached", "note": "She is fine now"}
        assert (await browser.post(f"{path}/contacts", data=contact)).status_code == 303
        refused = await browser.post(
            f"{path}/resolve", data={"csrf_token": token, "root_cause": "", "resolution": "x"}
        )
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in refused.text and "The root cause must be one of" in refused.text
        nul = await browser.post(f"{path}/notes", data={"csrf_token": token, "text": "a\x00b"})
        assert nul.status_code == 422 and "NUL" in nul.text
        resolved = {"csrf_token": token, "root_cause": "Price", "resolution": "Gave a voucher"}
        assert (await browser.post(f"{path}/resolve", data=resolved)).status_code == 303
        page = (await browser.get(path)).text
        assert "Called twice" in page and "Phone: reached them (first contact)" in page
        assert "Resolved, root cause: Price" in page and "Reopen" in page
    case = (await sut.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()
    assert case["status"] == "resolved" and [e["actor"] for e in case["timeline"]][-1] == "Ann Agent"


async def test_without_a_session_a_page_sends_to_sign_in_and_a_form_needs_its_token(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id, cookie = await _agent_case(sut, tenant, kafka_bootstrap)
    async with _browser(sut) as stranger:
        for path in ("/desk", f"/desk/cases/{case_id}"):
            answer = await stranger.get(path)
            assert answer.status_code == 303 and "/signin?next=" in answer.headers["location"]
    async with _browser(sut, cookie) as browser:
        forged = await browser.post(f"/desk/cases/{case_id}/notes", data={"text": "no token"})
        assert forged.status_code == 403
        wrong = await browser.post(f"/desk/cases/{case_id}/notes", data={"text": "x", "csrf_token": "0" * 64})
        assert wrong.status_code == 403
    case = (await sut.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()
    assert [entry["kind"] for entry in case["timeline"]] == ["opened", "routed", "assigned"]


async def test_an_agent_cannot_see_another_agents_case_but_their_lead_and_team_can(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id, _ = await _agent_case(sut, tenant, kafka_bootstrap)
    other = await make_user(sut.runtime, tenant.tenant_id, name="Bob")
    other_cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, other, name="Bob")
    lead = await make_user(sut.runtime, tenant.tenant_id, name="Lee", role="team_lead")
    lead_cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, lead, role="team_lead", name="Lee")
    stranger = await provision_tenant(sut.runtime)
    outsider = await make_user(sut.runtime, stranger.tenant_id, role="admin")
    outsider_cookie = await sign_in_cookie(sut.runtime, stranger.tenant_id, outsider, role="admin")
    path = f"/desk/cases/{case_id}"
    async with _browser(sut, other_cookie) as bob:
        hidden = await bob.get(path)
        assert (
            hidden.status_code == 404 and "Case not found" in hidden.text and "Late again." not in hidden.text
        )
        assert case_id not in (await bob.get("/desk")).text
        assert (await bob.get("/desk/cases/not-a-uuid")).status_code == 404
        bobs_token = csrf_token(other_cookie[COOKIE])
        meddled = await bob.post(f"{path}/notes", data={"csrf_token": bobs_token, "text": "mine now"})
        assert meddled.status_code == 404 and "mine now" not in meddled.text
    async with _browser(sut, outsider_cookie) as admin:
        assert (await admin.get(path)).status_code == 404
        assert case_id not in (await admin.get("/desk?tab=all")).text
    async with _browser(sut, lead_cookie) as lee:
        assert (await lee.get(path)).status_code == 200
        assert case_id in (await lee.get("/desk?tab=all")).text
    team = await make_team(sut.runtime, tenant.tenant_id, "Care")
    await sut.client.post(f"/v1/cases/{case_id}/assign", json={"team_id": str(team)}, headers=tenant.headers)
    member = await make_user(sut.runtime, tenant.tenant_id, name="Tea", teams=[team])
    async with _browser(sut, await sign_in_cookie(sut.runtime, tenant.tenant_id, member)) as tea:
        assert (await tea.get(path)).status_code == 200
        assert case_id in (await tea.get("/desk?tab=team")).text
        assert case_id not in (await tea.get("/desk?tab=mine")).text


async def test_a_customers_comment_and_a_colleagues_note_are_shown_as_text(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    case_id, cookie = await _agent_case(sut, tenant, kafka_bootstrap, comment=attack)
    await sut.client.post(f"/v1/cases/{case_id}/notes", json={"text": attack}, headers=tenant.headers)
    async with _browser(sut, cookie) as browser:
        page = (await browser.get(f"/desk/cases/{case_id}")).text
    assert attack not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the desk's own, from /desk/assets/
