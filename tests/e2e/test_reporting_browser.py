"""The reporting page in a real browser (Debian chromium via Playwright): the key typed into the
page, the server-rendered report swapped in by the page's script, and nothing shown for a wrong key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
from playwright.async_api import Browser

from libs.common.app import create_app
from libs.common.events import SURVEY_OPENED
from libs.devstack.ports import free_port
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, eventually, provision_tenant
from tests.e2e.test_survey_browser import browser, chromium, screenshot_path  # noqa: F401 - fixtures
from tests.integration.test_reporting_page import Invitation, page_of, rows_of


@pytest.fixture
async def reporting_site(start_service: StartService) -> AsyncIterator[tuple[ServiceUnderTest, str]]:
    service = await start_service(build, ReportingSettings)
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


async def test_the_report_page_shows_the_funnel_after_the_key_is_typed(
    browser: Browser,  # noqa: F811 - the fixture
    reporting_site: tuple[ServiceUnderTest, str],
    kafka_bootstrap: str,
) -> None:
    service, base_url = reporting_site
    tenant = await provision_tenant(service.runtime)
    touchpoint = f"checkout-{uuid.uuid4().hex[:8]}"
    first, second = (
        Invitation(kafka_bootstrap, tenant, touchpoint, f"c-{uuid.uuid4().hex[:8]}") for _ in range(2)
    )
    await first.sent()
    await second.sent()
    await first.step(SURVEY_OPENED)

    async def projected() -> bool:
        funnel = rows_of(await page_of(service, tenant), "funnel")
        return funnel.get(touchpoint, {}).get("Opened") == "1 (50.0 %)"

    await eventually(projected)
    page = await browser.new_page()
    try:
        await page.goto(f"{base_url}/")
        await page.fill("#api-key", "nps_0000000000000000_" + "x" * 43)
        await page.click("text=Show report")
        await page.get_by_text("That API key was not accepted.").wait_for()
        assert touchpoint not in await page.inner_text("#report-body")

        await page.fill("#api-key", tenant.api_key)
        await page.click("text=Show report")
        row = page.locator("#funnel tr", has_text=touchpoint)
        await row.wait_for()
        cells = await row.locator("th, td").all_inner_texts()
        assert [" ".join(c.split()) for c in cells[:3]] == [touchpoint, "2", "1 (50.0 %)"]
        await page.screenshot(path=str(screenshot_path("reporting", "funnel")), full_page=True)
    finally:
        await page.close()
