"""Did following up work? Follow-up cases in on Kafka as the alerting service now tells them (whole
state: owner, team, times, SLA outcome, root cause, recovery score), the figures a CX manager reads
out over HTTP: JSON, CSV and the summary page."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common import topics
from libs.common.events import FOLLOWUP_OPENED, FOLLOWUP_UPDATED, CaseStatus, FollowupOpened, FollowupUpdated
from services.reporting.config import ReportingSettings
from services.reporting.domain.followups import percentile
from services.reporting.main import build
from tests.conftest import ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_reporting_page import page_of, rows_of
from tests.integration.test_reporting_summary import Customer, summary_of

pytestmark = pytest.mark.integration

HOUR = 3600.0


@dataclass(frozen=True)
class Case:
    """One case's outcome; times in hours after opening, None where it never happened."""

    assignee: str | None
    team: str | None
    contact_hours: float | None
    within_sla: bool | None
    breached: bool
    resolved_hours: float | None
    root_cause: str | None = None
    recovery_score: int | None = None


class CaseDesk(Customer):
    """The alerting service as reporting hears it: an opening, then the case's whole state."""

    async def open(self, case_id: uuid.UUID, case: Case, opened_at: datetime) -> None:
        data = FollowupOpened(
            case_id=case_id,
            response_id=uuid.uuid4(),
            invitation_id=uuid.uuid4(),
            customer_id=self.customer_id,
            touchpoint=self.touchpoint,
            score=2,
            opened_at=opened_at,
            due_at=opened_at + timedelta(hours=24),
            priority="normal",
            assignee_name=case.assignee,
            team_name=case.team,
        )
        await self._send(FOLLOWUP_OPENED, topics.FOLLOWUPS, data)

    async def state(self, case_id: uuid.UUID, case: Case, opened_at: datetime, status: CaseStatus) -> None:
        def at(hours: float | None) -> datetime | None:
            return None if hours is None else opened_at + timedelta(hours=hours)

        data = FollowupUpdated(
            case_id=case_id,
            status=status,
            breached=case.breached,
            updated_at=opened_at + timedelta(hours=100),
            touchpoint=self.touchpoint,
            priority="normal",
            assignee_name=case.assignee,
            team_name=case.team,
            opened_at=opened_at,
            contacted_at=at(case.contact_hours),
            seconds_to_contact=None if case.contact_hours is None else case.contact_hours * HOUR,
            contact_within_sla=case.within_sla,
            resolved_at=at(case.resolved_hours) if status == "resolved" else None,
            seconds_to_resolution=(
                case.resolved_hours * HOUR if status == "resolved" and case.resolved_hours else None
            ),
            root_cause=case.root_cause,
            recovery_score=case.recovery_score,
        )
        await self._send(FOLLOWUP_UPDATED, topics.FOLLOWUPS, data)

    async def older_style_update(self, case_id: uuid.UUID, status: CaseStatus, at: datetime) -> None:
        """From an emitter that sends status and breach only."""
        data = FollowupUpdated(case_id=case_id, status=status, breached=True, updated_at=at)
        await self._send(FOLLOWUP_UPDATED, topics.FOLLOWUPS, data)


def fast(hours: float, score: int, cause: str = "delivery") -> Case:
    return Case("Ana", "Care", hours, True, False, hours + 10, cause, score)


def late(hours: float, score: int, cause: str | None = "billing") -> Case:
    return Case("Bo", "Billing", hours, False, True, hours + 10, cause, score)


#: Ten resolved cases: six customers reached within 24 h, five of them won back; four reached
#: later (and so past their due time), one won back. Then one breached case nobody reached, and a
#: fresh one still inside its SLA.
CASES = [
    fast(1, 9),
    fast(2, 10),
    fast(3, 8),
    fast(4, 7),
    fast(5, 9, cause="billing"),
    fast(6, 3),
    late(30, 8),
    late(40, 2),
    late(50, 4),
    late(60, 5, cause=None),
    Case(None, None, None, None, True, None),
    Case(None, None, None, None, False, None),
]


async def followups_of(service: ServiceUnderTest, tenant: TestTenant, **params: str) -> dict[str, Any]:
    response = await service.client.get("/v1/reports/followups", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_group(rows: list[dict[str, Any]], key: str = "group") -> dict[str, tuple[Any, ...]]:
    return {
        row[key]: tuple(value for name, value in row.items() if name not in (key, "interval_95"))
        for row in rows
    }


async def feed(desk: CaseDesk, opened_at: datetime) -> list[uuid.UUID]:
    case_ids = [uuid.uuid4() for _ in CASES]
    for case_id, case in zip(case_ids, CASES, strict=True):
        await desk.open(case_id, case, opened_at)
        if case.contact_hours is not None or case.breached:
            # The last late case is still "contacted": its resolution comes from an older emitter.
            status: CaseStatus = "resolved" if case.contact_hours is not None else "open"
            if case is CASES[9]:
                status = "contacted"
            await desk.state(case_id, case, opened_at, status)
    return case_ids


async def test_a_cx_manager_sees_whether_following_up_worked(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    stranger = await provision_tenant(reporting.runtime)
    touchpoint = f"delivery-{uuid.uuid4().hex[:8]}"
    opened_at = datetime.now(UTC) - timedelta(days=10)
    desk = CaseDesk(kafka_bootstrap, tenant, touchpoint)
    # Another tenant's case, on the same touchpoint and key: never counted for ours.
    other = CaseDesk(kafka_bootstrap, stranger, touchpoint)
    other.customer_id = desk.customer_id
    strangers_case = uuid.uuid4()
    await other.open(strangers_case, late(70, 1), opened_at)
    await other.state(strangers_case, late(70, 1), opened_at, "resolved")
    case_ids = await feed(desk, opened_at)

    async def all_projected() -> dict[str, Any] | None:
        body = await followups_of(reporting, tenant)
        return body if body["cases"] == len(CASES) and body["recovery"]["n"] == 10 else None

    body = await eventually(all_projected)
    contact_hours = [case.contact_hours for case in CASES if case.contact_hours is not None]
    assert body["contacted"] == 10
    # The database's percentiles are the documented ones.
    assert body["contact_hours_p50"] == round(percentile(contact_hours, 0.5) or 0, 2) == 5.5
    assert body["contact_hours_p90"] == round(percentile(contact_hours, 0.9) or 0, 2) == 51.0
    # Known: the ten contacted, and the breached case nobody reached; six were in time.
    assert (body["within_sla"], body["sla_known"], body["within_sla_share"]) == (6, 11, 0.5455)
    assert (body["breached"], body["resolved"]) == (5, 9)
    assert body["resolution_hours_p50"] == 15.0
    assert by_group(body["breaches_by_owner"], "name") == {
        "Bo": (4, 4, 0.8, 1.0),
        "Unassigned": (2, 1, 0.2, 0.5),
        "Ana": (6, 0, 0.0, 0.0),
    }
    assert [row["name"] for row in body["breaches_by_team"]] == ["Billing", "No team", "Care"]
    assert by_group(body["breaches_by_touchpoint"], "name") == {touchpoint: (12, 5, 1.0, 0.4167)}
    speeds = body["recovery_by_contact_speed"]
    assert by_group(speeds) == {
        "within 24 h": (6, 5, 0.8333),
        "later": (4, 1, 0.25),
        "never contacted": (0, 0, None),
    }
    assert speeds[0]["interval_95"] == {"low": 0.4365, "high": 0.9699}
    assert speeds[2]["interval_95"] is None
    assert by_group(body["recovery_by_root_cause"]) == {
        "delivery": (5, 4, 0.8),
        "billing": (4, 2, 0.5),
        "Not recorded": (1, 0, 0.0),
    }
    assert (body["recovery"]["n"], body["recovery"]["recovered"]) == (10, 6)

    await _an_older_style_update_keeps_the_figures(reporting, tenant, desk, case_ids[9], body)
    await _the_csv_gives_the_same_rows(reporting, tenant, touchpoint)
    await _the_page_shows_the_follow_up_section(reporting, tenant)

    assert (await followups_of(reporting, stranger))["cases"] == 1
    assert (await followups_of(reporting, tenant, touchpoint="elsewhere"))["cases"] == 0
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert (await followups_of(reporting, tenant, since=tomorrow))["recovery"]["n"] == 0
    assert (await reporting.client.get("/v1/reports/followups")).status_code == 401
    assert (await reporting.client.get("/v1/reports/followups.csv")).status_code == 401


async def _an_older_style_update_keeps_the_figures(
    reporting: ServiceUnderTest,
    tenant: TestTenant,
    desk: CaseDesk,
    case_id: uuid.UUID,
    before: dict[str, Any],
) -> None:
    # Resolved by an emitter that does not send the fields: the status moves on, nothing is wiped.
    await desk.older_style_update(case_id, "resolved", datetime.now(UTC))

    async def resolved() -> dict[str, Any] | None:
        body = await followups_of(reporting, tenant)
        return body if body["resolved"] == 10 else None

    after = await eventually(resolved)
    unchanged = {name: value for name, value in after.items() if not name.startswith("resol")}
    assert unchanged == {name: value for name, value in before.items() if not name.startswith("resol")}
    assert (await summary_of(reporting, tenant))["cases"]["resolved"] == 10


async def _the_csv_gives_the_same_rows(
    reporting: ServiceUnderTest, tenant: TestTenant, touchpoint: str
) -> None:
    response = await reporting.client.get("/v1/reports/followups.csv", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(response.text.splitlines()))
    assert {(row["breakdown"], row["group"]) for row in rows} >= {
        ("breaches_by_owner", "Unassigned"),
        ("breaches_by_touchpoint", touchpoint),
        ("recovery_by_root_cause", "Not recorded"),
    }
    fast_row = next(row for row in rows if row["group"] == "within 24 h")
    assert (fast_row["recovery_n"], fast_row["recovered"], fast_row["recovery_rate"]) == ("6", "5", "0.8333")
    assert (fast_row["recovery_ci_low"], fast_row["recovery_ci_high"], fast_row["cases"]) == (
        "0.4365",
        "0.9699",
        "",
    )
    bo = next(row for row in rows if row["group"] == "Bo")
    assert (bo["breakdown"], bo["cases"], bo["breached"], bo["share_of_breaches"]) == (
        "breaches_by_owner",
        "4",
        "4",
        "0.8",
    )


async def _the_page_shows_the_follow_up_section(reporting: ServiceUnderTest, tenant: TestTenant) -> None:
    page = await page_of(reporting, tenant)
    assert 'id="followup-heading">Follow-up</h2>' in page
    times = rows_of(page, "followup-times")
    assert times["First contact"] == {
        "Until": "First contact",
        "Cases": "10",
        "Median (p50)": "5.5 h",
        "90th percentile (p90)": "51.0 h",
    }
    speeds = rows_of(page, "recovery-by-contact-speed")
    assert speeds["within 24 h"]["Recovery rate"] == "83.3 %"
    assert speeds["within 24 h"]["Answered the recovery survey (n)"] == "6"
    assert speeds["later"]["Recovery rate"] == "25.0 %"
    assert speeds["later"]["95 % interval"] == "4.6 to 69.9 %"
    assert rows_of(page, "breaches-by-owner")["Unassigned"]["Breached"] == "1"
    assert rows_of(page, "recovery-by-root-cause")["Not recorded"]["Recovered"] == "0"
