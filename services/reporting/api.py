"""HTTP routes of reporting: the summary as JSON, and a small page that shows it."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from libs.common.events import Timestamp
from libs.common.http import Tenant, UoW
from services.reporting import repository
from services.reporting.domain.summary import CaseCounts, ScoreCounts, Summary
from services.reporting.repository import ReportFilter

router = APIRouter(tags=["reports"])

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


def _csp_for(page: str) -> str:
    """Allow exactly the page's own inline script and style (by hash) and requests to this origin.

    Everything the page shows comes from the API, so a stray script there could not run.
    """

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"
            for block in blocks
        )

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )


_PAGE = (Path(__file__).parent / "report.html").read_text(encoding="utf-8")
_PAGE_HEADERS = {
    "Content-Security-Policy": _csp_for(_PAGE),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def report_page() -> HTMLResponse:
    """The report page. It asks for the API key and keeps it in the browser tab only."""
    return HTMLResponse(_PAGE, headers=_PAGE_HEADERS)


class CasesView(BaseModel):
    open: int = Field(description="open or contacted")
    breached: int = Field(description="past their due time and not resolved")
    resolved: int


class SummaryView(BaseModel):
    nps: float | None = Field(description="-100 to 100, rounded to 2 decimals; null without answers")
    responses: int
    promoters: int
    passives: int
    detractors: int
    invitations_sent: int
    response_rate: float | None = Field(description="answers per invitation sent; null when none were sent")
    cases: CasesView


class _OfTouchpoint(BaseModel):
    touchpoint: str


# Listed after SummaryView so that pydantic, which takes fields base-first, puts the touchpoint first.
class TouchpointSummaryView(SummaryView, _OfTouchpoint):
    pass


class SummaryReport(SummaryView):
    by_touchpoint: list[TouchpointSummaryView]


def _fields(summary: Summary) -> dict[str, object]:
    scores, nps, rate = summary.scores, summary.scores.nps, summary.response_rate
    return {
        "nps": None if nps is None else round(nps, 2),
        "responses": scores.responses,
        "promoters": scores.promoters,
        "passives": scores.passives,
        "detractors": scores.detractors,
        "invitations_sent": summary.invitations_sent,
        "response_rate": None if rate is None else round(rate, 4),
        "cases": CasesView(
            open=summary.cases.open, breached=summary.cases.breached, resolved=summary.cases.resolved
        ),
    }


@router.get("/v1/reports/summary")
async def get_summary(
    tenant: Tenant,
    uow: UoW,
    touchpoint: Annotated[
        str | None, Query(pattern=TOUCHPOINT_PATTERN, description="only this touchpoint, e.g. support-ticket")
    ] = None,
    since: Annotated[
        Timestamp | None,
        Query(description="only what happened from then on: an ISO date (UTC midnight) or date-time"),
    ] = None,
) -> SummaryReport:
    """The tenant's results: Net Promoter Score, invitations sent, response rate and follow-up
    cases, overall and per touchpoint.

    Invitations count from when they were sent, answers from when they were given, cases from when
    they were opened. Cases whose opening has not reached reporting yet count in the totals only.
    """
    where = ReportFilter(tenant.tenant_id, touchpoint, since)
    histograms: dict[str, dict[int, int]] = {}
    for name, score, answers in await repository.answers_by_score(uow.session, where):
        histograms.setdefault(name, {})[score] = answers
    invitations = await repository.invitations_by_touchpoint(uow.session, where)
    case_groups: dict[str | None, list[tuple[str, bool, int]]] = {}
    for case_touchpoint, status, breached, cases in await repository.cases_by_state(uow.session, where):
        case_groups.setdefault(case_touchpoint, []).append((status, breached, cases))

    per_touchpoint = {
        name: Summary(
            scores=ScoreCounts.from_histogram(histograms.get(name, {})),
            invitations_sent=invitations.get(name, 0),
            cases=CaseCounts.from_groups(case_groups.get(name, [])),
        )
        for name in sorted({*histograms, *invitations, *(name for name in case_groups if name is not None)})
    }
    unplaced = Summary(cases=CaseCounts.from_groups(case_groups.get(None, [])))
    overall = sum(per_touchpoint.values(), unplaced)
    return SummaryReport(
        **_fields(overall),
        by_touchpoint=[
            TouchpointSummaryView(touchpoint=name, **_fields(summary))
            for name, summary in per_touchpoint.items()
        ],
    )
