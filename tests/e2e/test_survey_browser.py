"""The survey pages in a real browser (Debian's chromium driven by Playwright): what a person sees
and can do with the link from their email, with and without JavaScript, by keyboard, on a phone.

The survey service runs in-process against the real Postgres, broker and SMTP sink, served over
real HTTP by uvicorn so the browser talks to it as it would in production.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from libs.common import topics
from libs.common.app import create_app
from libs.common.events import SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED
from libs.devstack.ports import free_port
from services.survey.config import SurveySettings
from services.survey.main import build
from tests.conftest import Mailbox, ServiceUnderTest, StartService, TestTenant, provision_tenant, read_topic
from tests.integration.test_survey_flow import SECRET, email_to, invitations, request_survey

CHROMIUM = Path("/usr/bin/chromium")
# Known to work headless on these machines: no sandbox (CI runs as root), no GPU, and nothing
# phoning home that could stall a start-up without network.
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
LANGUAGES = ("da", "sv", "nb", "en", "de", "fi")
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def chromium() -> str:
    # A missing browser fails the tests rather than skipping them: a skip would let CI pass
    # without ever having opened the pages.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
            "(apt-get install -y chromium; .ci/run does this)",
            pytrace=False,
        )
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


@pytest.fixture(scope="module", autouse=True)
async def _site_service_ends_with_the_module(
    _service_pool: tuple[dict[str, ServiceUnderTest], list[ServiceUnderTest]],
) -> AsyncIterator[None]:
    """The site's survey service sends with this module's public URL. Left running, it would go on
    sending other tests' invitations (they share the database) with links to a server that is gone."""
    shared, everything = _service_pool
    before = set(shared)
    yield
    for key in set(shared) - before:
        service = shared.pop(key)
        everything.remove(service)
        await service.client.aclose()
        await service.runtime.stop()


@pytest.fixture(scope="module")
def site_port() -> int:
    # One port for the module: the public URL is part of the service's settings, and the same
    # settings give the same (already running) service for every test.
    return free_port()


@dataclass
class Site:
    service: ServiceUnderTest
    base_url: str

    def url(self, link: str) -> str:
        """A link from the email, on this site.

        Other survey services of the test session share the database and the request topic, so
        one of them may have sent the email with its own public URL; the token in the path is what
        counts.
        """
        parts = urlsplit(link)
        assert parts.path.startswith(("/s/", "/u/")), link
        return f"{self.base_url}{parts.path}"


@pytest.fixture
async def site(start_service: StartService, site_port: int) -> AsyncIterator[Site]:
    base_url = f"http://127.0.0.1:{site_port}"
    # survey_service's settings, except that the email's links point at this server.
    service = await start_service(
        build,
        SurveySettings,
        survey_token_secret=SECRET,
        survey_public_url=base_url,
        send_poll_seconds=0.05,
        public_rate_per_minute=100_000,
    )
    # The runtime is already started by start_service, so the served app must not start it again.
    config = uvicorn.Config(
        create_app(service.runtime), host="127.0.0.1", port=site_port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn stopped before it started serving"
        await asyncio.sleep(0.01)
    try:
        yield Site(service, base_url)
    finally:
        server.should_exit = True
        await serving


def screenshot_path(test: str, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{test}-{name}.png"


async def invited(
    site: Site, kafka_bootstrap: str, smtp_sink: Mailbox, *, locale: str | None = None
) -> tuple[TestTenant, str, uuid.UUID, EmailMessage]:
    tenant = await provision_tenant(site.service.runtime)
    customer = f"c-{uuid.uuid4().hex}"
    address = f"jane-{uuid.uuid4().hex[:12]}@example.com"
    invitation_id = await request_survey(
        kafka_bootstrap, tenant, customer=customer, email=address, locale=locale
    )
    return tenant, customer, invitation_id, await email_to(smtp_sink.directory, address)


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def links_in(message: EmailMessage) -> dict[str, str]:
    """The email's survey links by what they do: "0".."10" for the scores, "unsubscribe"."""
    found: dict[str, str] = {}
    for link in re.findall(r'href="([^"]+)"', html_of(message)):
        path = urlsplit(link).path
        if re.fullmatch(r"/s/[^/]+/\d+", path):
            found[path.rsplit("/", 1)[1]] = link
        elif path.startswith("/u/"):
            found["unsubscribe"] = link
    assert [str(score) for score in range(11)] == [k for k in found if k != "unsubscribe"], found
    return found


def events_of(invitation_id: uuid.UUID, *event_types: str) -> Any:
    def match(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] in event_types and body["data"]["invitation_id"] == str(invitation_id))

    return match


async def answer_score_and_follow_up(page: Page, test: str) -> None:
    """What a person does with the email's "7": prefers 9 after all, then answers the rest."""
    await page.get_by_text("Thank you! We have your score of 9.").wait_for()
    await page.screenshot(path=screenshot_path(test, "follow-up"), full_page=True)
    await page.locator("textarea#comment").fill("Quick delivery and friendly support.")
    await page.locator("label[for=recommended-yes]").click()
    assert await page.locator("#recommended-yes").is_checked()
    await page.get_by_role("button", name="Send").click()
    await page.get_by_role("heading", name="Thank you for your answers!").wait_for()
    await page.screenshot(path=screenshot_path(test, "thanks"), full_page=True)


async def assert_recorded_as_nine_with_follow_up(
    site: Site, kafka_bootstrap: str, tenant: TestTenant, customer: str, invitation_id: uuid.UUID
) -> None:
    [invitation] = await invitations(site.service, tenant, customer)
    assert invitation["status"] == "responded" and invitation["responded_at"] is not None
    records = await read_topic(
        kafka_bootstrap,
        topics.SURVEY_EVENTS,
        events_of(invitation_id, SURVEY_RESPONDED, SURVEY_RESPONSE_UPDATED),
        count=2,
    )
    by_type = {json.loads(record.value)["type"]: json.loads(record.value)["data"] for record in records}
    assert by_type[SURVEY_RESPONDED]["score"] == 9
    updated = by_type[SURVEY_RESPONSE_UPDATED]
    assert (updated["score"], updated["comment"], updated["recommended"]) == (
        9,
        "Quick delivery and friendly support.",
        True,
    )


async def choose_nine_instead_of_seven(page: Page, site: Site, link: str, test: str) -> None:
    await page.goto(site.url(link))
    assert await page.locator("#score-7").is_checked()
    await page.screenshot(path=screenshot_path(test, "seven-preselected"), full_page=True)
    await page.locator("label[for=score-9]").click()
    assert await page.locator("#score-9").is_checked()
    assert not await page.locator("#score-7").is_checked()
    await page.get_by_role("button", name="Send my score").click()


@pytest.mark.parametrize(("javascript", "name"), [(True, "person"), (False, "no-js")])
async def test_a_person_changes_the_emailed_seven_to_nine_and_answers_the_follow_up(
    browser: Browser, site: Site, kafka_bootstrap: str, smtp_sink: Mailbox, javascript: bool, name: str
) -> None:
    """The same with JavaScript off: the survey must work without it."""
    tenant, customer, invitation_id, message = await invited(site, kafka_bootstrap, smtp_sink)
    context = await browser.new_context(java_script_enabled=javascript)
    try:
        page = await context.new_page()
        await choose_nine_instead_of_seven(page, site, links_in(message)["7"], name)
        await answer_score_and_follow_up(page, name)
    finally:
        await context.close()

    await assert_recorded_as_nine_with_follow_up(site, kafka_bootstrap, tenant, customer, invitation_id)


async def test_a_score_can_be_given_by_keyboard_alone(
    browser: Browser, site: Site, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    tenant, customer, invitation_id, message = await invited(site, kafka_bootstrap, smtp_sink)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        # The survey without a score in the link: nothing chosen yet.
        await page.goto(site.url(links_in(message)["0"]).rsplit("/", 1)[0])
        assert await page.locator("input[name=score]:checked").count() == 0

        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.id") == "score-0"
        await page.keyboard.press("Space")
        for _ in range(6):
            await page.keyboard.press("ArrowRight")
        assert await page.evaluate("document.activeElement.id") == "score-6"
        assert await page.locator("#score-6").is_checked()
        await page.screenshot(path=screenshot_path("keyboard", "six-chosen"), full_page=True)
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Send my score"
        await page.keyboard.press("Enter")

        await page.get_by_text("Thank you! We have your score of 6.").wait_for()
    finally:
        await context.close()

    [invitation] = await invitations(site.service, tenant, customer)
    assert invitation["status"] == "responded"
    [responded] = await read_topic(
        kafka_bootstrap, topics.SURVEY_EVENTS, events_of(invitation_id, SURVEY_RESPONDED)
    )
    assert json.loads(responded.value)["data"]["score"] == 6


async def test_every_score_fits_a_phone_screen(
    browser: Browser, site: Site, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    _, _, _, message = await invited(site, kafka_bootstrap, smtp_sink)
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        await page.goto(site.url(links_in(message)["10"]))
        await page.screenshot(path=screenshot_path("phone", "survey"), full_page=True)

        for score in range(11):
            label = page.locator(f"label[for=score-{score}]")
            assert await label.is_visible(), score
            box = await label.bounding_box()
            assert box is not None, score
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (score, box)
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= PHONE["width"], "the page scrolls sideways"
    finally:
        await context.close()


async def test_visiting_every_link_without_clicking_records_nothing(
    browser: Browser, site: Site, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    tenant, customer, _, message = await invited(site, kafka_bootstrap, smtp_sink)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        for name, link in links_in(message).items():
            response = await page.goto(site.url(link))
            assert response is not None and response.status == 200, name
        await page.screenshot(path=screenshot_path("scanner", "unsubscribe-page"), full_page=True)
    finally:
        await context.close()

    [invitation] = await invitations(site.service, tenant, customer)
    assert (invitation["status"], invitation["responded_at"]) == ("sent", None)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_survey_page_and_email_in_each_language(
    browser: Browser, site: Site, kafka_bootstrap: str, smtp_sink: Mailbox, language: str
) -> None:
    _, _, _, message = await invited(site, kafka_bootstrap, smtp_sink, locale=language)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(site.url(links_in(message)["8"]))
        assert await page.locator("html").get_attribute("lang") == language
        assert await page.locator("input[name=score]").count() == 11
        assert await page.locator("#score-8").is_checked()
        await page.screenshot(path=screenshot_path("language", f"{language}-survey"), full_page=True)

        await page.set_content(html_of(message))
        await page.screenshot(path=screenshot_path("language", f"{language}-email"), full_page=True)
    finally:
        await context.close()
