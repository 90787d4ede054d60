"""The report page's server-rendered summary: funnel steps and changed answers in on Kafka, the
numbers a person reads out of the HTML tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from libs.common import topics
from libs.common.events import (
    SURVEY_BOUNCED,
    SURVEY_CLICKED,
    SURVEY_FAILED,
    SURVEY_OPENED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    SURVEY_SENT,
    Contract,
    Event,
    FailureReason,
    SurveyFailed,
    SurveyResponded,
    SurveyResponseUpdated,
    SurveySent,
    SurveyStep,
    new_event,
)
from services.reporting.config import ReportingSettings
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, produce, provision_tenant

pytestmark = pytest.mark.integration


class Tables(HTMLParser):
    """Each table's caption and rows of cell text (th and td alike), by the table's id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.captions: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
            self.captions[self._table] = ""
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("th", "td") and self._table is not None:
            self._cell = []
        elif tag == "caption":
            self._in_caption = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("th", "td") and self._table is not None and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_caption and self._table is not None:
            self.captions[self._table] += data


def rows_of(page: str, table: str) -> dict[str, dict[str, str]]:
    """A table as {row header: {column header: cell text}}; empty while it says "Nothing to show yet."."""
    parser = Tables()
    parser.feed(page)
    header, *rows = parser.tables[table]
    if rows == [["Nothing to show yet."]]:
        return {}
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


class Invitation:
    """One invitation to one customer; every event keyed by one shared customer, so in order."""

    def __init__(self, bootstrap: str, tenant: TestTenant, touchpoint: str, customer_id: str) -> None:
        self.bootstrap = bootstrap
        self.tenant = tenant
        self.touchpoint = touchpoint
        self.customer_id = customer_id
        self.invitation_id = uuid.uuid4()
        self.response_id = uuid.uuid4()
        self.responded_at = datetime.now(UTC) - timedelta(minutes=5)

    async def _send(self, event_type: str, data: Contract) -> None:
        event: Event[Contract] = new_event(
            event_type, tenant_id=self.tenant.tenant_id, data=data, subject=self.customer_id, source="/tests"
        )
        await produce(
            self.bootstrap, topics.SURVEY_EVENTS, event.envelope.to_json(), key=self.customer_id.encode()
        )

    async def sent(self) -> None:
        sent_at = self.responded_at - timedelta(hours=1)
        data = SurveySent(
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            sent_at=sent_at,
        )
        await self._send(SURVEY_SENT, data)

    async def step(self, event_type: str) -> None:
        data = SurveyStep(
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            at=self.responded_at - timedelta(minutes=30),
        )
        await self._send(event_type, data)

    async def failed(self, reason: FailureReason) -> None:
        data = SurveyFailed(
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            at=self.responded_at,
            reason=reason,
        )
        await self._send(SURVEY_FAILED, data)

    async def responded(self, score: int) -> None:
        data = SurveyResponded(
            response_id=self.response_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            email=f"{self.customer_id}@shop.example",
            touchpoint=self.touchpoint,
            score=score,
            responded_at=self.responded_at,
        )
        await self._send(SURVEY_RESPONDED, data)

    async def answered_more(self, score: int, **answers: Any) -> None:
        data = SurveyResponseUpdated(
            response_id=self.response_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            revision=2,
            score=score,
            responded_at=self.responded_at,
            updated_at=self.responded_at + timedelta(minutes=2),
            **answers,
        )
        await self._send(SURVEY_RESPONSE_UPDATED, data)


async def page_of(service: ServiceUnderTest, tenant: TestTenant, **params: str) -> str:
    response = await service.client.get("/v1/reports/summary.html", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_the_page_shows_each_touchpoints_funnel_and_follow_up_answers(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    checkout, quiet = f"checkout-{uuid.uuid4().hex[:8]}", f"quiet-{uuid.uuid4().hex[:8]}"
    customer_id = f"customer-{uuid.uuid4().hex[:8]}"
    happy, unhappy, unopened, bounced = (
        Invitation(kafka_bootstrap, tenant, checkout, customer_id) for _ in range(4)
    )
    for invitation in (happy, unhappy, unopened, bounced):
        await invitation.sent()
    await happy.step(SURVEY_OPENED)
    await happy.step(SURVEY_OPENED)  # opened twice: still one invitation opened
    await happy.step(SURVEY_CLICKED)
    await unhappy.step(SURVEY_OPENED)
    await bounced.step(SURVEY_BOUNCED)
    await Invitation(kafka_bootstrap, tenant, checkout, customer_id).failed("recipient_refused")
    await Invitation(kafka_bootstrap, tenant, checkout, customer_id).failed("recipient_refused")
    await Invitation(kafka_bootstrap, tenant, checkout, customer_id).failed("expired")
    await happy.responded(10)
    await happy.answered_more(10, recommended=True, csat=5, effort=2)
    await unhappy.responded(9)
    await unhappy.answered_more(9, recommended=False, csat=3)
    # Last on the partition: once it shows, everything before it was projected.
    await Invitation(kafka_bootstrap, tenant, quiet, customer_id).sent()

    async def all_projected() -> str | None:
        page = await page_of(reporting, tenant)
        return page if quiet in rows_of(page, "funnel") else None

    page = await eventually(all_projected)
    funnel = rows_of(page, "funnel")
    assert funnel[checkout] == {
        "Touchpoint": checkout,
        "Sent": "4",
        "Opened": "2 (50.0 %)",
        "Opened by a machine only": "0 (0.0 %)",
        "Clicked": "1 (25.0 %)",
        "Responded": "2 (50.0 %)",
        "Reminded": "0 (0.0 %)",
        "Bounced": "1 (25.0 %)",
        "Unsubscribed": "0 (0.0 %)",
        "Expired": "0 (0.0 %)",
        # Never sent: no share of what was.
        "Failed (never delivered)": "3 (—)",
    }
    assert rows_of(page, "failed") == {
        "The address does not exist": {"Why": "The address does not exist", "Invitations": "2"},
        "Expired before it could be sent": {"Why": "Expired before it could be sent", "Invitations": "1"},
    }
    assert funnel["All touchpoints"]["Sent"] == "5"
    assert funnel["All touchpoints"]["Opened"] == "2 (40.0 %)"

    follow_up = rows_of(page, "follow-up")
    assert follow_up[checkout] == {
        "Touchpoint": checkout,
        "Recommended us in the last 12 months": "50.0 %",
        "Said yes, of answered": "1 of 2",
        "Average CSAT (1-5)": "4.0",
        "CSAT answered": "2",
        "Average effort (1-7)": "2.0",
        "Effort answered": "1",
    }
    # Nobody answered there: no share or average to speak of, rather than a misleading 0.
    assert follow_up[quiet] == {
        "Touchpoint": quiet,
        "Recommended us in the last 12 months": "—",
        "Said yes, of answered": "0 of 0",
        "Average CSAT (1-5)": "—",
        "CSAT answered": "0",
        "Average effort (1-7)": "—",
        "Effort answered": "0",
    }
    scores = rows_of(page, "scores")
    assert (scores[checkout]["NPS"], scores[checkout]["Response rate"]) == ("+100.0", "50.0 %")
    assert scores[quiet]["Response rate"] == "0.0 %"

    # The filter narrows the tables as it narrows the JSON.
    only_quiet = await page_of(reporting, tenant, touchpoint=quiet)
    assert set(rows_of(only_quiet, "funnel")) == {quiet, "All touchpoints"}
    assert rows_of(only_quiet, "funnel")[quiet]["Opened"] == "0 (0.0 %)"


async def test_the_page_needs_the_key_and_shows_nothing_yet_without_data(
    start_service: StartService,
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)

    assert (await reporting.client.get("/v1/reports/summary.html")).status_code == 401
    page = await page_of(reporting, tenant)
    assert (
        "default-src 'none'"
        in (await reporting.client.get("/v1/reports/summary.html", headers=tenant.headers)).headers[
            "content-security-policy"
        ]
    )
    parser = Tables()
    parser.feed(page)
    assert parser.tables["funnel"][1] == ["Nothing to show yet."]
    assert parser.tables["follow-up"][1] == ["Nothing to show yet."]
    assert "<script" not in page

    # The sign-in page itself is public, the key entered in the tab; its script is a file of its own.
    sign_in = await reporting.client.get("/")
    assert sign_in.status_code == 200
    assert "script-src 'self'; style-src 'self'" in sign_in.headers["content-security-policy"]
    assert '<script src="/assets/report.js"' in sign_in.text
    script = await reporting.client.get("/assets/report.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text
    assert "/v1/reports/summary.html" in script.text
    # Only the page's own files are served, each as what it is, never sniffed as something else.
    chart = await reporting.client.get("/assets/vendor/uplot/uPlot.iife.min.js")
    assert chart.headers["content-type"].startswith("text/javascript")
    styles = await reporting.client.get("/assets/report.css")
    assert styles.headers["content-type"].startswith("text/css")
    for served in (script, chart, styles):
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["cache-control"].startswith("public, max-age=")
    for elsewhere in ("vendor/uplot/LICENSE", "../report.html", "..%2Fconfig.py", "report.js.map"):
        assert (await reporting.client.get(f"/assets/{elsewhere}")).status_code == 404
