"""The sign-in pages in a real browser (Debian chromium via Playwright): by keyboard, on a phone's
width, the email's link followed with its button, and the session cookie set HttpOnly.

Alerting runs in-process (the session's shared one) and is served over real HTTP by uvicorn; the
link in the email names the desk's public address, which the test maps to that server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from playwright.async_api import Browser, Route
from playwright.async_api import TimeoutError as PlaywrightTimeout

from libs.common.app import create_app
from libs.devstack.ports import free_port
from tests.conftest import Mailbox, ServiceUnderTest, StartService, eventually, provision_tenant
from tests.e2e.test_reporting_browser import reporting_site  # noqa: F401 - the fixture
from tests.e2e.test_survey_browser import browser, chromium, screenshot_path  # noqa: F401 - fixtures
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_signin import DESK, _address, _links, _one_mail, _user

pytestmark = pytest.mark.e2e


@pytest.fixture
async def desk_site(start_service: StartService) -> AsyncIterator[tuple[ServiceUnderTest, str]]:
    service = await _alerting(start_service)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service.runtime), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn stopped before it started serving"
        await asyncio.sleep(0.01)
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_a_person_signs_in_by_keyboard_on_a_phone(
    browser: Browser,  # noqa: F811 - the fixture
    desk_site: tuple[ServiceUnderTest, str],
    smtp_sink: Mailbox,
) -> None:
    service, base_url = desk_site
    tenant = await provision_tenant(service.runtime)
    address = _address()
    await _user(service, tenant, address)
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()

    async def desk_home(route: Route) -> None:
        # The desk's own pages are not this test's: its home answers a stand-in.
        await route.fulfill(status=200, content_type="text/html", body="<h1>Case desk</h1>")

    await page.route(f"{DESK}/desk**", desk_home)
    try:
        await page.goto(f"{base_url}/signin")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        assert await page.evaluate("document.activeElement.id") == "email"
        email = page.get_by_label("Email address")
        await email.fill(address)
        await email.press("Enter")
        await page.get_by_role("heading", name="Check your email").wait_for()
        await page.screenshot(path=str(screenshot_path("signin", "sent")), full_page=True)

        (link,) = _links(await _one_mail(smtp_sink, address))
        await page.goto(link.replace(DESK, base_url))
        continue_button = page.get_by_role("button", name="Continue")
        await continue_button.wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.screenshot(path=str(screenshot_path("signin", "continue")), full_page=True)
        await page.keyboard.press("Enter")
        await page.get_by_role("heading", name="Case desk").wait_for()
        assert page.url == f"{DESK}/desk"

        cookies = {cookie["name"]: cookie for cookie in await context.cookies(base_url)}
        assert cookies["nps_session"]["httpOnly"] and cookies["nps_session"]["sameSite"] == "Lax"

        await page.goto(link.replace(DESK, base_url))
        await page.get_by_role("button", name="Continue").click()
        await page.get_by_text("This sign-in link has expired or was already used.").wait_for()
        await page.get_by_role("link", name="Ask for a new sign-in link").click()
        await page.get_by_label("Email address").wait_for()
    finally:
        await context.close()


async def test_the_report_opens_without_a_key_for_a_person_signed_in(
    browser: Browser,  # noqa: F811 - the fixture
    desk_site: tuple[ServiceUnderTest, str],
    reporting_site: tuple[ServiceUnderTest, str],  # noqa: F811 - the fixture
    smtp_sink: Mailbox,
) -> None:
    desk, desk_url = desk_site
    reporting, report_url = reporting_site
    tenant = await provision_tenant(desk.runtime, reporting.runtime)
    address = _address()
    await _user(desk, tenant, address)
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{report_url}/")
        await page.locator("#api-key").wait_for()
        sign_in = await page.get_attribute("#desk-sign-in", "href")
        assert sign_in is not None and sign_in.startswith(f"{DESK}/signin?next=")

        await page.goto(f"{desk_url}/signin")
        await page.get_by_label("Email address").fill(address)
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("heading", name="Check your email").wait_for()
        (link,) = _links(await _one_mail(smtp_sink, address))
        await page.goto(link.replace(DESK, desk_url))
        await page.route(f"{DESK}/desk**", lambda route: route.fulfill(status=200, body="desk"))
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(f"{DESK}/desk")

        # Cookies are per host, not per port: the desk's cookie goes to the report on 127.0.0.1 too,
        # which accepts it once it has heard of the session (session.started on nps.tenants).
        async def report_shown() -> bool:
            await page.goto(f"{report_url}/")
            try:
                await page.locator("#report-body table").first.wait_for(timeout=2000)
            except PlaywrightTimeout:
                return False
            return True

        await eventually(report_shown, within=20, interval=0.5)
        assert not await page.locator("#api-key").is_visible()
        assert not await page.locator("#forget").is_visible()
    finally:
        await context.close()
