"""The case desk in a real browser (Debian's chromium driven by Playwright), as a case's owner uses
it: a case routed to them by a rule, they follow the case-opened email's link, sign in with the
emailed magic link, find the case in "My cases", log the phone call by keyboard and resolve it;
and on a phone, without scrolling sideways.

Alerting runs in-process against the real Postgres, broker and SMTP sink (the session's shared
instance), served over real HTTP by uvicorn on a free port. Its emails and redirects name the desk's
public address (settings.desk_public_url), which nothing listens on. So the app is served as behind a
reverse proxy for that address: each request names the public host (the sign-in's ``next`` is then
the public page), and a redirect to the public address is rewritten to the server's (nginx's
``proxy_redirect``); the test opens an emailed link at the server's origin, path and query kept. The
phone test signs its person in by a session stored as the magic-link sign-in stores it
(tests/support/desk.py).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.app import create_app
from libs.devstack.ports import free_port
from tests.conftest import (
    Mailbox,
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    provision_tenant,
)
from tests.e2e.test_survey_browser import PHONE, SCREENSHOTS, browser, chromium  # noqa: F401 - fixtures
from tests.integration.test_alerting_followups import _alerting, _answer, _body, _cases, _mail_to, _publish
from tests.integration.test_case_desk_api import _one_case
from tests.integration.test_signin import _links
from tests.support.desk import make_team, make_user, sign_in_cookie

SIGN_IN_SUBJECT = "Sign in to the NPS case desk"


@dataclass
class Desk:
    service: ServiceUnderTest
    # The address the desk's emails and redirects name (settings.desk_public_url).
    public_url: str
    # Where uvicorn really listens, and the browser goes.
    base_url: str

    def opened(self, mailed_link: str) -> str:
        """An emailed link as the browser here opens it: the server's origin, the link's path and query."""
        assert mailed_link.startswith(self.public_url + "/"), mailed_link
        return self.base_url + mailed_link.removeprefix(self.public_url)


def _behind_proxy(app: ASGIApp, public_url: str, base_url: str) -> ASGIApp:
    """The app as a reverse proxy for the public address serves it at ``base_url``: every request
    names the public host, and a redirect to the public address goes to ``base_url`` instead."""
    host = urlsplit(public_url).netloc.encode()
    public, served = public_url.encode(), base_url.encode()

    async def proxied(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name != b"host"]

        async def send_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, served + value.removeprefix(public) if name == b"location" else value)
                    for name, value in message["headers"]
                ]
            await send(message)

        await app({**scope, "headers": [*headers, (b"host", host)]}, receive, send_back)

    return proxied


@pytest.fixture
async def desk(start_service: StartService) -> AsyncIterator[Desk]:
    service = await _alerting(start_service)
    public_url = service.runtime.settings.desk_public_url.rstrip("/")
    port = free_port()
    # The runtime is already started by start_service, so the served app must not start it again.
    base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        _behind_proxy(create_app(service.runtime), public_url, base_url),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn stopped before it started serving"
        await asyncio.sleep(0.01)
    try:
        yield Desk(service, public_url, base_url)
    finally:
        server.should_exit = True
        await serving


def shot(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"desk-{name}.png")


async def _context(opened: Browser, *, phone: bool = False) -> BrowserContext:
    if phone:
        return await opened.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    return await opened.new_context()


async def _mail(mailbox: Mailbox, address: str, subject: str) -> EmailMessage:
    async def arrived() -> list[EmailMessage]:
        return [
            mail for mail in _mail_to(mailbox, address) if str(mail["Subject"]).strip().startswith(subject)
        ]

    mails: list[EmailMessage] = await eventually(arrived, within=20)
    (mail,) = mails
    return mail


async def _tab_to(page: Page, element_id: str, *, most: int = 60) -> None:
    """Press Tab until the element has the focus, as a keyboard user moves through the page."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable by Tab")


async def _routed_to_a_new_owner(desk: Desk, kafka_bootstrap: str) -> tuple[TestTenant, str, str]:
    """A tenant whose one rule routes every case to Mette, made through the REST API, and then the
    detractor's answer that opens her case: the tenant, her address and the case's id."""
    sut = desk.service
    tenant = await provision_tenant(sut.runtime)
    address = f"mette-{uuid.uuid4().hex[:10]}@desk.example"
    made = await sut.client.post(
        "/v1/users", json={"email": address, "name": "Mette Owner", "role": "agent"}, headers=tenant.headers
    )
    assert made.status_code == 201, made.text
    rule = {"name": "All to Mette", "when": {}, "then": {"user": made.json()["id"]}}
    ruled = await sut.client.put("/v1/routing/rules", json={"rules": [rule]}, headers=tenant.headers)
    assert ruled.status_code == 200, ruled.text
    case_id = await _one_case(
        sut, tenant, kafka_bootstrap, comment="The parcel came two weeks late and the box was crushed."
    )
    return tenant, address, case_id


async def _signs_in_from_the_link(
    page: Page, desk: Desk, smtp_sink: Mailbox, address: str, link: str
) -> None:
    """Follow the case's emailed link signed out, ask for a sign-in link by keyboard, and use it: the
    desk then shows the case the link named."""
    await page.goto(desk.opened(link))
    await page.get_by_role("heading", name="Sign in").wait_for()
    signin = urlsplit(page.url)
    assert signin.path == "/signin" and parse_qs(signin.query)["next"] == [link], page.url
    await page.screenshot(path=shot("signin-asked"), full_page=True)
    assert await page.evaluate("document.activeElement.id") == "email"
    await page.keyboard.type(address)
    await page.screenshot(path=shot("signin-form"), full_page=True)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Email me a sign-in link"
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Check your email").wait_for()
    await page.screenshot(path=shot("signin-sent"), full_page=True)

    (sign_in_link,) = _links(await _mail(smtp_sink, address, SIGN_IN_SUBJECT))
    assert sign_in_link.startswith(f"{desk.public_url}/signin/"), sign_in_link
    await page.goto(desk.opened(sign_in_link))
    await page.get_by_role("button", name="Continue").wait_for()
    await page.screenshot(path=shot("signin-continue"), full_page=True)
    await page.keyboard.press("Enter")
    await page.wait_for_url(desk.opened(link))


async def test_the_owner_signs_in_from_the_email_logs_the_call_by_keyboard_and_resolves_the_case(
    browser: Browser,  # noqa: F811 - the fixture
    desk: Desk,
    kafka_bootstrap: str,
    smtp_sink: Mailbox,
) -> None:
    tenant, address, case_id = await _routed_to_a_new_owner(desk, kafka_bootstrap)
    # The rule sent the case, and its email, to her: the email links the case on the desk.
    opened = _body(await _mail(smtp_sink, address, "Detractor at"))
    link = f"{desk.public_url}/desk/cases/{case_id}"
    assert f"Open the case on the case desk: {link}" in opened.splitlines()

    context = await _context(browser)
    try:
        page = await context.new_page()
        await _signs_in_from_the_link(page, desk, smtp_sink, address, link)
        await page.get_by_role("heading", name="Case of Jane Doe").wait_for()
        await page.get_by_role("link", name="Back to the cases").click()
        await page.get_by_role("heading", name="My cases").wait_for()
        await page.screenshot(path=shot("list"), full_page=True)
        row = page.locator("table.cases tbody tr")
        assert await row.count() == 1 and "Mette Owner" in await row.inner_text()
        await page.get_by_role("link", name="Jane Doe").click()
        await page.get_by_role("heading", name="Case of Jane Doe").wait_for()
        facts = page.locator("#case-heading + dl")
        assert "Breached" not in await facts.inner_text()
        assert re.search(r"Due\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+\(in ", await facts.inner_text())
        await page.screenshot(path=shot("case"), full_page=True)

        # Log the call by keyboard alone: phone and "reached" are the first choices.
        await _tab_to(page, "contact-channel")
        assert await page.evaluate("document.activeElement.value") == "phone"
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.id") == "contact-outcome"
        assert await page.evaluate("document.activeElement.value") == "reached"
        await page.keyboard.press("Tab")
        await page.keyboard.type("She accepts a voucher for the delay.")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Log contact"
        await page.keyboard.press("Enter")
        await page.get_by_text("Phone: reached them (first contact)").wait_for()
        await page.screenshot(path=shot("contacted"), full_page=True)

        await page.get_by_label("Root cause").select_option("Delivery")
        await page.get_by_label("Resolution").fill("Sent a 20 EUR voucher and an apology.")
        await page.get_by_role("button", name="Resolve case").click()
        await page.get_by_text("Resolved, root cause: Delivery").wait_for()
        await page.screenshot(path=shot("resolved"), full_page=True)
        assert (await page.locator("#case-heading + dl .status").inner_text()).lower() == "resolved"
        timeline = [
            line.split(" by ")[0] for line in await page.locator("ol.timeline > li").all_inner_texts()
        ]
        assert timeline == [
            "Opened",
            "Routed",
            "Phone: reached them (first contact)",
            "Resolved, root cause: Delivery",
        ]
        assert "Breached" not in await facts.inner_text()
    finally:
        await context.close()

    case = (await desk.service.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()
    assert case["status"] == "resolved" and case["root_cause"] == "Delivery"
    assert [entry["kind"] for entry in case["timeline"]] == ["opened", "routed", "contact", "resolved"]
    assert case["timeline"][2]["actor"] == "Mette Owner"


async def _owner_with_a_case(desk: Desk, kafka_bootstrap: str) -> tuple[TestTenant, str, dict[str, str]]:
    sut = desk.service
    tenant = await provision_tenant(sut.runtime)
    case_id = await _one_case(
        sut, tenant, kafka_bootstrap, comment="The parcel came two weeks late and the box was crushed."
    )
    owner = await make_user(sut.runtime, tenant.tenant_id, name="Olivia Owner")
    assigned = await sut.client.post(
        f"/v1/cases/{case_id}/assign", json={"user_id": str(owner)}, headers=tenant.headers
    )
    assert assigned.status_code == 200
    cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, owner, name="Olivia Owner")
    return tenant, case_id, cookie


async def test_the_desk_fits_a_phone_screen_and_marks_an_overdue_case_in_words(
    browser: Browser,  # noqa: F811 - the fixture
    desk: Desk,
    kafka_bootstrap: str,
) -> None:
    tenant, case_id, cookie = await _owner_with_a_case(desk, kafka_bootstrap)
    # Ten days ago: well past a normal case's three working days, whatever the weekday.
    late = _answer(tenant, score=6, responded_at=datetime.now(UTC) - timedelta(days=10))
    await _publish(kafka_bootstrap, late)
    cases = await eventually(lambda: _two(desk.service, tenant), within=30)
    overdue = next(case["id"] for case in cases if case["id"] != case_id)
    owner = (await desk.service.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()["assignee"]
    await desk.service.client.post(
        f"/v1/cases/{overdue}/assign", json={"user_id": owner["id"]}, headers=tenant.headers
    )
    context = await _context(browser, phone=True)
    await context.add_cookies(
        [{"name": name, "value": value, "url": desk.base_url} for name, value in cookie.items()]
    )
    try:
        page = await context.new_page()
        for name, path in (("phone-list", "/desk"), ("phone-case", f"/desk/cases/{case_id}")):
            await page.goto(f"{desk.base_url}{path}")
            await page.screenshot(path=shot(name), full_page=True)
            scroll_width = await page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= PHONE["width"], f"{path} scrolls sideways ({scroll_width} px)"
        await page.goto(f"{desk.base_url}/desk")
        # Soonest due first: the overdue case leads, marked in words, not by colour alone.
        first_row = page.locator("table.cases tbody tr").first
        assert "Breached" in await first_row.inner_text()
    finally:
        await context.close()


async def _two(sut: ServiceUnderTest, tenant: TestTenant) -> list[dict[str, Any]]:
    cases = await _cases(sut, tenant)
    return cases if len(cases) == 2 else []


async def test_an_admin_adds_a_person_by_keyboard_on_a_phone(
    browser: Browser,  # noqa: F811 - the fixture
    desk: Desk,
) -> None:
    sut = desk.service
    tenant = await provision_tenant(sut.runtime)
    admin = await make_user(sut.runtime, tenant.tenant_id, name="Ada Admin", role="admin")
    team = await make_team(sut.runtime, tenant.tenant_id, "Returns and refunds")
    await make_user(sut.runtime, tenant.tenant_id, name="Tea Member-With-A-Long-Name", teams=[team])
    cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, admin, role="admin", name="Ada Admin")
    context = await _context(browser, phone=True)
    await context.add_cookies(
        [{"name": name, "value": value, "url": desk.base_url} for name, value in cookie.items()]
    )
    address = f"nia-{uuid.uuid4().hex[:10]}@a-rather-long-company-domain.example"
    try:
        page = await context.new_page()
        await page.goto(f"{desk.base_url}/desk")
        await page.get_by_role("link", name="People").click()
        await page.wait_for_url(f"{desk.base_url}/desk/people")
        await _tab_to(page, "user-email")
        await page.keyboard.type(address)
        await page.keyboard.press("Tab")
        await page.keyboard.type("Nia New")
        await page.keyboard.press("Tab")
        await page.keyboard.press("ArrowDown")  # from Agent to Team lead
        await page.keyboard.press("Tab")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert page.url == f"{desk.base_url}/desk/people"
        row = page.locator("table.people tbody tr", has_text=address)
        assert "Nia New" in await row.inner_text()
        assert await row.locator("select").input_value() == "team_lead"
        await page.screenshot(path=shot("people"), full_page=True)
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= PHONE["width"], f"/desk/people scrolls sideways ({scroll_width} px)"
    finally:
        await context.close()
