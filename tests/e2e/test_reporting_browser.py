"""The reporting page in a real browser (Debian chromium via Playwright): the key typed into the
page, the server-rendered report swapped in by the page's script, and nothing shown for a wrong key;
the morning report's cards, charts, segment table, comments and live updates from cells published as
scoring publishes them."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, expect

from libs.common import topics
from libs.common.app import create_app
from libs.common.events import (
    FOLLOWUP_OPENED,
    NPS_UPDATED,
    SURVEY_OPENED,
    CellSpend,
    FollowupOpened,
    NpsInterval,
    NpsSegment,
    NpsUpdated,
    NpsWindow,
    new_event,
)
from libs.common.nps import Counts
from libs.common.nps import interval as nps_interval
from libs.devstack.ports import free_port
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, produce, provision_tenant
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


# ---- the morning report: cards, charts, segments, comments and live updates --------------------

Day = dict[str | None, list[int]]
"""One UTC day's scores, by country (None: the customers without one; they count only for everybody)."""


def _category_counts(scores: list[int]) -> Counts:
    return Counts(
        promoters=sum(score >= 9 for score in scores),
        passives=sum(7 <= score <= 8 for score in scores),
        detractors=sum(score <= 6 for score in scores),
    )


def _windows(day: date) -> list[NpsWindow]:
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return [
        NpsWindow(bucket="day", start=day, end=day + timedelta(days=1)),
        NpsWindow(bucket="week", start=week, end=week + timedelta(days=7)),
        NpsWindow(bucket="month", start=month, end=next_month),
    ]


Spending = dict[str | None, list[tuple[str, int]]]
"""Each answer's 12-month spend snapshot by its country: (currency, amount in minor units)."""

_GROUPS = ("promoters", "passives", "detractors")


def _group_of(score: int) -> str:
    return "promoters" if score >= 9 else "passives" if score >= 7 else "detractors"


def _cell_spend(given: list[tuple[int, str | None]], spending: Spending | None) -> list[CellSpend] | None:
    """As scoring sums a cell's spend: per currency (in currency order) and NPS group."""
    if spending is None:
        return None
    summed: dict[str, dict[str, int]] = {}
    for score, country in given:
        for currency, amount in spending.get(country, []):
            groups = summed.setdefault(currency, dict.fromkeys(_GROUPS, 0))
            groups[_group_of(score)] += amount
    return [CellSpend(currency=currency, **summed[currency]) for currency in sorted(summed)]


def _cells(
    touchpoint: str, days: dict[date, Day], version: int, spending: Spending | None = None
) -> list[NpsUpdated]:
    """Every cell the answers of ``days`` count in, as scoring emits them: each of day, week and
    month, for everybody and for each country, with its absolute counts (and, given ``spending``,
    the answers' spend)."""
    scores: dict[tuple[NpsWindow, str | None], list[tuple[int, str | None]]] = {}
    for day, by_country in days.items():
        for window in _windows(day):
            for country, given in by_country.items():
                scores.setdefault((window, None), []).extend((score, country) for score in given)
                if country is not None:
                    scores.setdefault((window, country), []).extend((score, country) for score in given)
    cells = []
    for (window, country), answered in scores.items():
        given = [score for score, _ in answered]
        counts, low_high = _category_counts(given), nps_interval(_category_counts(given))
        assert counts.nps is not None and low_high is not None
        cells.append(
            NpsUpdated(
                touchpoint=touchpoint,
                promoters=counts.promoters,
                passives=counts.passives,
                detractors=counts.detractors,
                responses=counts.responses,
                nps=round(counts.nps, 2),
                as_of=datetime.now(UTC),
                distribution=[given.count(score) for score in range(11)],
                confidence_interval=NpsInterval(low=low_high.low, high=low_high.high, level=low_high.level),
                window=window,
                segment=None if country is None else NpsSegment(dimension="country", value=country),
                version=version,
                spend=_cell_spend(answered, spending),
            )
        )
    return cells


async def _publish_cells(bootstrap: str, tenant: TestTenant, cells: list[NpsUpdated]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for cell in cells:
            event = new_event(
                NPS_UPDATED, tenant_id=tenant.tenant_id, data=cell, subject=cell.touchpoint, source="/tests"
            )
            key = f"{tenant.tenant_id}:{cell.touchpoint}".encode()
            await producer.send(topics.SCORES, event.envelope.to_json(), key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _numbers(text: str) -> list[float]:
    return [float(number) for number in re.findall(r"[+-]?\d+(?:\.\d+)?", text)]


def _close(shown: str, expected: float) -> bool:
    """The page shows one decimal: within rounding of the exact value."""
    return abs(float(shown) - expected) <= 0.051


async def _no_sideways_scroll(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def _projected(service: ServiceUnderTest, tenant: TestTenant, touchpoint: str, responses: int) -> None:
    async def arrived() -> bool:
        scores = await service.client.get(
            "/v1/reports/scores", headers=tenant.headers, params={"touchpoint": touchpoint}
        )
        verbatims = await service.client.get(
            "/v1/reports/verbatims", headers=tenant.headers, params={"touchpoint": touchpoint}
        )
        return (
            scores.status_code == verbatims.status_code == 200
            and scores.json()["score"]["responses"] == responses
            and len(verbatims.json()["verbatims"]) == 3
            and any(verbatim["case"] for verbatim in verbatims.json()["verbatims"])
        )

    await eventually(arrived, within=30)


async def _comments(kafka_bootstrap: str, tenant: TestTenant, touchpoint: str) -> uuid.UUID:
    """Three answers with a comment, the 10 and the 8 having recommended us and the 3 not; the
    detractor's gets a follow-up case, whose id is returned."""
    invitations = []
    for score, comment, recommended in (
        (3, "The parcel arrived two days late", False),
        (10, "Lovely staff in the shop", True),
        (8, "Parcel fine, the app was slow", True),
    ):
        invitation = Invitation(kafka_bootstrap, tenant, touchpoint, f"c-{uuid.uuid4().hex[:8]}")
        await invitation.sent()
        await invitation.responded(score)
        await invitation.answered_more(score, comment=comment, recommended=recommended)
        invitations.append(invitation)
    detractor, case_id = invitations[0], uuid.uuid4()
    opened = FollowupOpened(
        case_id=case_id,
        response_id=detractor.response_id,
        invitation_id=detractor.invitation_id,
        customer_id=detractor.customer_id,
        touchpoint=touchpoint,
        score=3,
        opened_at=detractor.responded_at,
        due_at=detractor.responded_at + timedelta(hours=48),
    )
    event = new_event(
        FOLLOWUP_OPENED,
        tenant_id=tenant.tenant_id,
        data=opened,
        subject=detractor.customer_id,
        source="/tests",
    )
    await produce(
        kafka_bootstrap, topics.FOLLOWUPS, event.envelope.to_json(), key=detractor.customer_id.encode()
    )
    return case_id


async def _rows(page: Page, selector: str) -> list[list[str]]:
    return [
        [" ".join(cell.split()) for cell in row.split("\t")]
        for row in await page.locator(selector).all_inner_texts()
    ]


async def _recommended_counted(service: ServiceUnderTest, tenant: TestTenant, touchpoint: str) -> None:
    async def counted() -> bool:
        got = await service.client.get(
            "/v1/reports/recommended", headers=tenant.headers, params={"touchpoint": touchpoint}
        )
        return got.status_code == 200 and sum(row["answered"] for row in got.json()["by_group"]) == 3

    await eventually(counted, within=30)


async def _check_recommended_and_repurchase(page: Page) -> None:
    """The comments' three answers: the 3 said no, the 10 and the 8 yes (one answer each: a Wilson
    interval from 0 or to 100 %, the API's 0.2065 and 0.7935 shown to one decimal as the browser's
    toFixed does); none is 90 days old, so no group has a repurchase rate yet."""
    one_yes, one_no = "20.6 to 100.0 %", "0.0 to 79.3 %"
    await expect(page.locator("#recommended tbody tr")).to_have_count(11)
    heads = await page.locator("#recommended thead th").all_inner_texts()
    assert heads == ["Score", "Answered", "Said yes", "Share", "95 % interval"]
    by_score = {row[0]: row[1:] for row in await _rows(page, "#recommended tbody tr")}
    assert list(by_score) == [str(score) for score in range(11)]
    assert by_score["3"] == ["1", "0", "0.0 %", one_no]
    assert by_score["8"] == by_score["10"] == ["1", "1", "100.0 %", one_yes]
    assert by_score["9"] == ["0", "0", "—", "—"]
    assert await _rows(page, "#recommended tfoot tr") == [
        ["Promoters 9-10", "1", "1", "100.0 %", one_yes],
        ["Passives 7-8", "1", "1", "100.0 %", one_yes],
        ["Detractors 0-6", "1", "0", "0.0 %", one_no],
    ]
    heads = await page.locator("#repurchase thead th").all_inner_texts()
    assert heads == ["Group", "Answers", "Bought again", "Rate", "95 % interval"]
    await expect(page.locator("#repurchase tbody tr")).to_have_count(3)
    assert await _rows(page, "#repurchase tbody tr") == [
        [name, "0", "0", "—", "—"] for name in ("Promoters 9-10", "Passives 7-8", "Detractors 0-6")
    ]
    for table in ("recommended", "repurchase"):
        region = page.locator(f".scroll:has(#{table})")
        assert await region.get_attribute("role") == "region" and await region.get_attribute("aria-label")
        assert await page.locator(f"#{table} caption").inner_text()


async def _check_cards_and_charts(page: Page, everybody: Counts, distribution: list[int]) -> None:
    assert everybody.nps is not None
    expected = nps_interval(everybody)
    assert expected is not None
    assert _close(await page.inner_text("#nps-value"), everybody.nps)
    low, high = _numbers(await page.inner_text("#nps-interval"))[-2:]
    assert _close(str(low), expected.low) and _close(str(high), expected.high)
    assert f"n = {everybody.responses} answers" in await page.inner_text("#nps-n")

    canvas = page.locator("#trend-chart canvas").first
    box = await canvas.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    trend = await page.locator("#trend-table tbody tr").all_inner_texts()
    answered = [row.split("\t") for row in trend if not row.endswith("\t0")]
    assert len(answered) == 3, trend
    bars = await page.locator("#distribution-table tbody tr").all_inner_texts()
    assert [row.split("\t") for row in bars] == [[str(score), str(n)] for score, n in enumerate(distribution)]


async def _check_segments_by_keyboard(page: Page, dk: Counts, se: Counts) -> None:
    assert dk.nps is not None and se.nps is not None
    values = page.locator("#segments tbody td.segment-value")
    await page.locator("#segments th[data-sort=nps] button").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#segments th[data-sort=nps]")).to_have_attribute("aria-sort", "descending")
    best_first = ["DK", "SE"] if dk.nps > se.nps else ["SE", "DK"]
    await expect(values).to_have_text(best_first)
    await page.keyboard.press("Enter")
    await expect(page.locator("#segments th[data-sort=nps]")).to_have_attribute("aria-sort", "ascending")
    await expect(values).to_have_text(best_first[::-1])
    assert "sort=nps" in page.url
    spark = page.locator("#segments tbody svg.spark").first
    assert "Weekly NPS" in (await spark.get_attribute("aria-label") or "")


async def test_the_morning_report_shows_scores_charts_segments_comments_and_live_changes(
    browser: Browser,  # noqa: F811 - the fixture
    reporting_site: tuple[ServiceUnderTest, str],
    kafka_bootstrap: str,
) -> None:
    service, base_url = reporting_site
    tenant = await provision_tenant(service.runtime)
    touchpoint = f"shop-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    days: dict[date, Day] = {
        today - timedelta(days=14): {"DK": [10, 10, 9, 9, 8, 3], "SE": [10, 6, 5, 2]},
        today - timedelta(days=7): {"DK": [10, 9, 9, 7, 7, 0], "SE": [9, 4, 6], None: [10]},
        today: {"DK": [10, 10, 9, 8, 6], "SE": [3, 2, 10]},
    }
    given = [score for by_country in days.values() for scores in by_country.values() for score in scores]
    # Three currencies, one without decimals: JPY 1,200 is 1200 minor units.
    spending: Spending = {"DK": [("DKK", 84_950)], "SE": [("EUR", 4_500), ("JPY", 1_200)]}
    await _publish_cells(kafka_bootstrap, tenant, _cells(touchpoint, days, version=1, spending=spending))
    case_id = await _comments(kafka_bootstrap, tenant, touchpoint)
    await _projected(service, tenant, touchpoint, len(given))
    await _recommended_counted(service, tenant, touchpoint)

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security" in message.text else None,
    )
    try:
        await page.goto(f"{base_url}/?touchpoint={touchpoint}")
        await page.fill("#api-key", tenant.api_key)
        await page.click("text=Show report")
        # The stream is opened once every panel has loaded.
        await expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
        await _check_cards_and_charts(
            page, _category_counts(given), [given.count(score) for score in range(11)]
        )
        by_country = {
            country: _category_counts([s for day in days.values() for s in day.get(country, [])])
            for country in ("DK", "SE")
        }
        await _check_segments_by_keyboard(page, by_country["DK"], by_country["SE"])
        await _check_recommended_and_repurchase(page)
        # Each currency its own card, with its own decimals: 0.3 of 3 Danes' DKK 849.50 and of 7
        # Swedes' EUR 45.00 and JPY 1,200 (the revenue panel's own test checks the rest).
        await expect(page.locator("#revenue-totals .money-card .value")).to_have_text(
            ["DKK 764.55", "EUR 94.50", "JPY 2,520"]
        )

        await page.fill("#q", "parcel")
        await page.press("#q", "Enter")
        comments = page.locator("#verbatims blockquote")
        await expect(comments).to_have_count(2)
        assert {" ".join(text.split()) for text in await comments.all_inner_texts()} == {
            "The parcel arrived two days late",
            "Parcel fine, the app was slow",
        }
        case_link = page.locator("#verbatims li", has_text="two days late").get_by_role("link")
        assert (await case_link.get_attribute("href") or "").endswith(f"/desk/cases/{case_id}")
        assert "Case (open)" in await case_link.inner_text()
        # With a key in the tab, the export is fetched with it and saved from a Blob.
        async with page.expect_download() as downloading:
            await page.click("#export-responses")
        download = await downloading.value
        assert download.suggested_filename == "responses.csv"
        exported = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
        assert "The parcel arrived two days late" in exported
        assert "Lovely staff in the shop" in exported

        # Nothing was answered in the 90 days before: no change to speak of, and the page says so.
        await page.check("#compare")
        await page.click("#filters button[type=submit]")
        await expect(page.locator("#change-value")).to_have_text("Too few answers")
        assert "compare=previous" in page.url
        await _no_sideways_scroll(page)
        await page.screenshot(path=str(screenshot_path("reporting", "report-1280")), full_page=True)

        # A new answer reaches the page through the stream: no reload (the marker survives).
        await page.evaluate("window.stillTheSamePage = true")
        days[today]["DK"] = [*days[today]["DK"], 10, 10, 10, 10, 10]
        after = _category_counts([*given, 10, 10, 10, 10, 10])
        assert after.nps is not None
        await _publish_cells(
            kafka_bootstrap, tenant, _cells(touchpoint, {today: days[today]}, version=2, spending=spending)
        )
        await expect(page.locator("#nps-n")).to_have_text(f"n = {after.responses} answers", timeout=15000)
        assert _close(await page.inner_text("#nps-value"), after.nps)
        assert await page.evaluate("window.stillTheSamePage === true")

        await page.set_viewport_size({"width": 390, "height": 844})
        await page.locator("#trend-chart canvas").first.wait_for()
        await _no_sideways_scroll(page)
        for table in ("recommended", "repurchase"):
            box = await page.locator(f".scroll:has(#{table})").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        await page.screenshot(path=str(screenshot_path("reporting", "report-390")), full_page=True)
        assert refused == [], "the page's own scripts and styles are enough under its CSP"
    finally:
        await context.close()


# ---- revenue at risk ----------------------------------------------------------------------------


async def _revenue_projected(service: ServiceUnderTest, tenant: TestTenant, touchpoints: list[str]) -> None:
    async def arrived() -> bool:
        got = await service.client.get("/v1/reports/revenue", headers=tenant.headers)
        return got.status_code == 200 and sorted(
            row["touchpoint"] for row in got.json()["touchpoints"]
        ) == sorted(touchpoints)

    await eventually(arrived, within=30)


async def _row_groups(page: Page, table: str) -> dict[str, list[list[str]]]:
    """Per row group (a touchpoint or segment value): its rows' cells, the group's name and its
    detractors and passives counted only in its first row."""
    groups: dict[str, list[list[str]]] = {}
    for body in await page.locator(f"#{table} tbody").all():
        rows = [
            [" ".join(cell.split()) for cell in await row.locator("th, td").all_inner_texts()]
            for row in await body.locator("tr").all()
        ]
        groups[rows[0][0]] = [rows[0][1:], *rows[1:]]
    return groups


async def _check_revenue(page: Page, shop: str, support: str, amounts: dict[str, list[str]]) -> None:
    """``amounts``: per group (overall, each touchpoint, DK, SE), the risk in DKK and EUR."""
    cards = page.locator("#revenue-totals .money-card")
    await expect(cards.locator(".value")).to_have_text([" ".join(a.split()) for a in amounts["all"]])
    assert [" ".join(text.split()) for text in await cards.locator(".label").all_inner_texts()] == [
        "DKK at risk",
        "EUR at risk",
    ]
    assert "From 3 detractors and 2 passives" in await page.inner_text("#revenue-counted")
    # A row per currency (at risk, detractors' and passives' spend), the group's answers counted once.
    assert await _row_groups(page, "revenue-touchpoints") == {
        shop: [
            [amounts[shop][0], "DKK 1,500.00", "DKK 1,000.00", "2", "1"],
            [amounts[shop][1], "EUR 20.00", "EUR 0.00"],
        ],
        support: [
            [amounts[support][0], "DKK 1,000.00", "DKK 500.00", "1", "1"],
            [amounts[support][1], "EUR 0.00", "EUR 20.00"],
        ],
    }
    assert await _row_groups(page, "revenue-segments") == {
        "DK": [[amounts["DK"][0], "DKK 2,000.00", "DKK 1,000.00", "2", "1"]],
        "SE": [
            [amounts["SE"][0], "DKK 500.00", "DKK 500.00", "1", "1"],
            [amounts["SE"][1], "EUR 20.00", "EUR 20.00"],
        ],
    }
    assert await page.inner_text("#revenue-segments caption") == "By country (as segments by, above)"


async def _tab_to(page: Page, selector: str, presses: int = 80) -> None:
    """Tab from the top of the page until ``selector`` has the focus: reachable by keyboard."""
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reached by Tab")


async def test_the_revenue_panel_shows_the_risk_per_currency_touchpoint_and_country(
    browser: Browser,  # noqa: F811 - the fixture
    reporting_site: tuple[ServiceUnderTest, str],
    kafka_bootstrap: str,
) -> None:
    service, base_url = reporting_site
    tenant = await provision_tenant(service.runtime)
    shop, support = f"shop-{uuid.uuid4().hex[:8]}", f"support-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    # A Dane spent DKK 1,000.00 in the 12 months before answering, a Swede DKK 500.00 and EUR 20.00.
    spending: Spending = {"DK": [("DKK", 100_000)], "SE": [("DKK", 50_000), ("EUR", 2_000)]}
    await _publish_cells(
        kafka_bootstrap,
        tenant,
        _cells(shop, {today: {"DK": [3, 8, 10], "SE": [2]}}, version=1, spending=spending)
        + _cells(support, {today: {"DK": [5], "SE": [7, 9]}}, version=1, spending=spending),
    )
    await _revenue_projected(service, tenant, [shop, support])

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{base_url}/")
        await page.fill("#api-key", tenant.api_key)
        await page.click("text=Show report")
        # The defaults, 0.3 of the detractors' spend and none of the passives', called a placeholder.
        await _check_revenue(
            page,
            shop,
            support,
            {
                "all": ["DKK 750.00", "EUR 6.00"],
                shop: ["DKK 450.00", "EUR 6.00"],
                support: ["DKK 300.00", "EUR 0.00"],
                "DK": ["DKK 600.00"],
                "SE": ["DKK 150.00", "EUR 6.00"],
            },
        )
        assert (
            await page.inner_text("#revenue-probability-values")
            == "Churn probabilities used: 30 % of detractors and 0 % of passives are expected to leave."
        )
        source = await page.inner_text("#revenue-probability-source")
        assert (
            "has not set them yet: these are the defaults" in source
            and "placeholder, not a measured churn rate" in source
        )
        assert await page.locator("#revenue-probability-source a").get_attribute("href") == "/docs"

        put = await service.client.put(
            "/v1/reports/settings",
            json={"churn_probability": {"detractor": 0.25, "passive": 0.5}},
            headers=tenant.headers,
        )
        assert put.status_code == 200, put.text
        await page.click("#filters button[type=submit]")
        # 1,500.00 x 0.25 + 1,000.00 x 0.5 at the shop; EUR never added to DKK.
        await _check_revenue(
            page,
            shop,
            support,
            {
                "all": ["DKK 1,375.00", "EUR 15.00"],
                shop: ["DKK 875.00", "EUR 5.00"],
                support: ["DKK 500.00", "EUR 10.00"],
                "DK": ["DKK 1,000.00"],
                "SE": ["DKK 375.00", "EUR 15.00"],
            },
        )
        assert "25 % of detractors and 50 % of passives" in await page.inner_text(
            "#revenue-probability-values"
        )
        assert "Your organisation's own setting, from" in await page.inner_text("#revenue-probability-source")

        await _tab_to(page, "#revenue-probability-source a")
        await _tab_to(page, ".scroll:has(#revenue-touchpoints)")
        await _no_sideways_scroll(page)
        panel = page.locator("#revenue-panel")
        await panel.screenshot(path=str(screenshot_path("reporting", "revenue-1280")))

        await page.set_viewport_size({"width": 390, "height": 844})
        await _no_sideways_scroll(page)
        box = await panel.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        await panel.screenshot(path=str(screenshot_path("reporting", "revenue-390")))

        # The segments table's dimension is the panel's too: no answer has a channel.
        await page.fill("#dimension", "channel")
        await page.press("#dimension", "Enter")
        await expect(page.locator("#revenue-segments caption")).to_have_text(
            "By channel (as segments by, above)"
        )
        await expect(page.locator("#revenue-segments tbody")).to_have_text(
            "No spend recorded in these segments yet."
        )
        assert "dimension=channel" in page.url

        # One segment chosen above: the panel is of that segment alone.
        await page.fill("#segment", "country:SE")
        await page.click("#filters button[type=submit]")
        await expect(page.locator("#revenue-segments caption")).to_have_text(
            "Segment country:SE (the segment filter)"
        )
        await expect(page.locator("#revenue-totals .money-card .value")).to_have_text(
            ["DKK 375.00", "EUR 15.00"]
        )
        assert "segment=country%3ASE" in page.url
    finally:
        await context.close()
