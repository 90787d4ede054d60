"""The case desk in a real browser (Debian's chromium driven by Playwright), as a case's owner uses
it: find the case in "My cases", open it, log the phone call, resolve it, by keyboard for the call;
and on a phone, without scrolling sideways.

Alerting runs in-process against the real Postgres, broker and SMTP sink (the session's shared
instance), served over real HTTP by uvicorn. The person signs in by a session stored as the
magic-link sign-in stores it (tests/support/desk.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from libs.common.app import create_app
from libs.devstack.ports import free_port
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_alerting_followups import _alerting, _answer, _cases, _publish
from tests.integration.test_case_desk_api import _one_case
from tests.support.desk import make_user, sign_in_cookie

CHROMIUM = Path("/usr/bin/chromium")
# As tests/e2e/test_survey_browser.py launches it: no sandbox, no GPU, nothing phoning home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def chromium() -> str:
    # A missing browser fails the tests rather than skipping them.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium", pytrace=False)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Desk:
    service: ServiceUnderTest
    base_url: str


@pytest.fixture
async def desk(start_service: StartService) -> AsyncIterator[Desk]:
    service = await _alerting(start_service)
    port = free_port()
    # The runtime is already started by start_service, so the served app must not start it again.
    config = uvicorn.Config(
        create_app(service.runtime), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn stopped before it started serving"
        await asyncio.sleep(0.01)
    try:
        yield Desk(service, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await serving


def shot(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"desk-{name}.png")


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


async def _signed_in(
    browser: Browser, desk: Desk, cookie: dict[str, str], *, phone: bool = False
) -> BrowserContext:
    if phone:
        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    else:
        context = await browser.new_context()
    await context.add_cookies(
        [{"name": name, "value": value, "url": desk.base_url} for name, value in cookie.items()]
    )
    return context


async def _tab_to(page: Page, element_id: str, *, most: int = 60) -> None:
    """Press Tab until the element has the focus, as a keyboard user moves through the page."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable by Tab")


async def test_the_owner_finds_logs_the_call_by_keyboard_and_resolves_the_case(
    browser: Browser, desk: Desk, kafka_bootstrap: str
) -> None:
    tenant, case_id, cookie = await _owner_with_a_case(desk, kafka_bootstrap)
    context = await _signed_in(browser, desk, cookie)
    try:
        page = await context.new_page()
        await page.goto(f"{desk.base_url}/desk")
        await page.get_by_role("heading", name="My cases").wait_for()
        await page.screenshot(path=shot("list"), full_page=True)
        await page.get_by_role("link", name="Jane Doe").click()
        await page.get_by_role("heading", name="Case of Jane Doe").wait_for()
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

        await page.get_by_label("Root cause").select_option("Delivery")
        await page.get_by_label("Resolution").fill("Sent a 20 EUR voucher and an apology.")
        await page.get_by_role("button", name="Resolve case").click()
        await page.get_by_text("Resolved, root cause: Delivery").wait_for()
        await page.screenshot(path=shot("resolved"), full_page=True)
    finally:
        await context.close()

    case = (await desk.service.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()
    assert case["status"] == "resolved" and case["root_cause"] == "Delivery"
    assert [entry["kind"] for entry in case["timeline"]] == ["assigned", "contact", "resolved"]
    assert case["timeline"][1]["actor"] == "Olivia Owner"


async def test_the_desk_fits_a_phone_screen_and_marks_an_overdue_case_in_words(
    browser: Browser, desk: Desk, kafka_bootstrap: str
) -> None:
    tenant, case_id, cookie = await _owner_with_a_case(desk, kafka_bootstrap)
    late = _answer(tenant, score=6, responded_at=datetime.now(UTC) - timedelta(hours=30))
    await _publish(kafka_bootstrap, late)
    cases = await eventually(lambda: _two(desk.service, tenant), within=30)
    overdue = next(case["id"] for case in cases if case["id"] != case_id)
    owner = (await desk.service.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()["assignee"]
    await desk.service.client.post(
        f"/v1/cases/{overdue}/assign", json={"user_id": owner["id"]}, headers=tenant.headers
    )
    context = await _signed_in(browser, desk, cookie, phone=True)
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
