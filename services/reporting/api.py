"""HTTP routes of reporting: the summary as JSON, and a small page that shows it."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, Field

from libs.common.db import UnitOfWork
from libs.common.deps import Settings, UoW
from libs.common.events import FailureReason, Timestamp
from libs.common.web import TenantOrPerson
from services.reporting.domain import display
from services.reporting.domain.summary import CaseCounts, FollowUpAnswers, Funnel, ScoreCounts, Summary
from services.reporting.repository import ReportFilter, ReportingRepository

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


_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    # Touchpoint names are the tenant's own text: everything is escaped unless marked safe.
    autoescape=True,
    undefined=StrictUndefined,
)
#: The summary document carries no script or style of its own; the report page styles it.
_SUMMARY_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_PAGE = (Path(__file__).parent / "report.html").read_text(encoding="utf-8")
_PAGE_HEADERS = {
    "Content-Security-Policy": _csp_for(_PAGE),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def report_page(settings: Settings) -> HTMLResponse:
    """The report page. A person signed in at the case desk sees the report at once; otherwise it
    asks for the API key (kept in the browser tab only), or offers to sign in at the desk."""
    sign_in = f"{settings.desk_public_url}/signin?next={quote(settings.report_public_url + '/', safe='')}"
    return HTMLResponse(_PAGE.replace("{{SIGN_IN_URL}}", html.escape(sign_in)), headers=_PAGE_HEADERS)


class CasesView(BaseModel):
    open: int = Field(description="open or contacted")
    breached: int = Field(description="past their due time and not resolved")
    resolved: int


class FunnelView(BaseModel):
    """Invitations that reached each step, each invitation counted once per step."""

    sent: int
    opened: int = Field(description="opened by a person")
    machine_opened: int = Field(
        description="opened only by a machine (Apple Mail Privacy Protection, a mail gateway on "
        "delivery, a script): arrived, but not known to have been read"
    )
    clicked: int
    responded: int
    reminded: int
    bounced: int
    unsubscribed: int
    expired: int
    failed: int = Field(description="never delivered: the survey gave them up (see failed_by_reason)")


class SummaryView(BaseModel):
    nps: float | None = Field(description="-100 to 100, rounded to 2 decimals; null without answers")
    responses: int
    promoters: int
    passives: int
    detractors: int
    invitations_sent: int
    response_rate: float | None = Field(description="answers per invitation sent; null when none were sent")
    cases: CasesView
    funnel: FunnelView
    failed_by_reason: dict[FailureReason, int] = Field(
        description="invitations given up, by reason: expired, attempts_exhausted, refused, "
        "recipient_refused, suppressed, unbuildable, tenant_unknown"
    )
    recommended_share: float | None = Field(
        description="of the answers saying whether they recommended us in the last 12 months, the share "
        "saying yes (0-1, rounded to 4 decimals); null when nobody answered that question"
    )
    recommended_answers: int
    average_csat: float | None = Field(description="mean satisfaction (1-5) where answered; null if never")
    csat_answers: int
    average_effort: float | None = Field(description="mean effort (1-7) where answered; null if never")
    effort_answers: int


class _OfTouchpoint(BaseModel):
    touchpoint: str


# Listed after SummaryView so that pydantic, which takes fields base-first, puts the touchpoint first.
class TouchpointSummaryView(SummaryView, _OfTouchpoint):
    pass


class SummaryReport(SummaryView):
    by_touchpoint: list[TouchpointSummaryView]


def _fields(summary: Summary) -> dict[str, object]:
    scores, nps, rate = summary.scores, summary.scores.nps, summary.response_rate
    follow_up = summary.follow_up
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
        "funnel": FunnelView(**summary.funnel.as_dict()),
        "failed_by_reason": dict(summary.failed_by_reason),
        "recommended_share": _rounded(follow_up.recommended_share, 4),
        "recommended_answers": follow_up.recommended_answers,
        "average_csat": _rounded(follow_up.average_csat, 2),
        "csat_answers": follow_up.csat_answers,
        "average_effort": _rounded(follow_up.average_effort, 2),
        "effort_answers": follow_up.effort_answers,
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


TouchpointQuery = Annotated[
    str | None, Query(pattern=TOUCHPOINT_PATTERN, description="only this touchpoint, e.g. support-ticket")
]
SinceQuery = Annotated[
    Timestamp | None,
    Query(description="only what happened from then on: an ISO date (UTC midnight) or date-time"),
]


@router.get("/v1/reports/summary")
async def get_summary(
    tenant: TenantOrPerson,
    uow: UoW,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
) -> SummaryReport:
    """The tenant's results: Net Promoter Score, invitations sent, response rate, follow-up
    cases, the invitations' funnel (sent, opened by a person, opened only by a machine such as
    Apple Mail Privacy Protection, clicked, responded, reminded, bounced, unsubscribed, expired)
    and the follow-up questions (recommended in the last 12 months, CSAT,
    effort), overall and per touchpoint.

    Scores are each answer's current one: a score the customer replaced within the grace period
    counts as replaced. Invitations count from when they were sent, answers from when they were
    given, funnel steps from when they happened, cases from when they were opened. Cases whose
    opening has not reached reporting yet count in the totals only.
    """
    overall, per_touchpoint = await _summaries(uow, ReportFilter(tenant.tenant_id, touchpoint, since))
    return SummaryReport(
        **_fields(overall),
        by_touchpoint=[
            TouchpointSummaryView(touchpoint=name, **_fields(summary))
            for name, summary in per_touchpoint.items()
        ],
    )


@router.get("/v1/reports/summary.html", response_class=HTMLResponse)
async def get_summary_page(
    tenant: TenantOrPerson,
    uow: UoW,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
) -> HTMLResponse:
    """The same summary as an HTML document, as the report page shows it: the score, answers
    and cases, the survey funnel with each step's share of the invitations sent, and the
    follow-up questions, per touchpoint and for all of them."""
    overall, per_touchpoint = await _summaries(uow, ReportFilter(tenant.tenant_id, touchpoint, since))
    page = _TEMPLATES.get_template("summary.html").render(
        fmt=display,
        scope=_scope(touchpoint, since),
        overall=overall,
        by_touchpoint=list(per_touchpoint.items()),
    )
    return HTMLResponse(page, headers=_SUMMARY_PAGE_HEADERS)


def _scope(touchpoint: str | None, since: datetime | None) -> str:
    where = f"Touchpoint {touchpoint}" if touchpoint else "All touchpoints"
    when = f"since {since.isoformat()}" if since else "everything so far"
    return f"{where}, {when}."


async def _summaries(
    uow: UnitOfWork[ReportingRepository], where: ReportFilter
) -> tuple[Summary, dict[str, Summary]]:
    """The summary over everything the filter selects, and one per touchpoint in name order.

    Its several queries read one snapshot: under the default isolation each would see what had
    committed by then, and a batch landing in between showed its funnel steps but not its sends."""
    repository = uow.repository
    await repository.read_one_snapshot()
    histograms: dict[str, dict[int, int]] = {}
    for name, score, answers in await repository.answers_by_score(where):
        histograms.setdefault(name, {})[score] = answers
    invitations = await repository.invitations_by_touchpoint(where)
    details = await repository.answer_details_by_touchpoint(where)
    failures: dict[str, dict[str, int]] = {}
    for name, reason, given_up in await repository.failures_by_touchpoint(where):
        failures.setdefault(name, {})[reason] = given_up
    step_counts: dict[str, dict[str, int]] = {}
    for name, step, reached in await repository.steps_by_touchpoint(where):
        step_counts.setdefault(name, {})[step] = reached
    case_groups: dict[str | None, list[tuple[str, bool, int]]] = {}
    for case_touchpoint, status, breached, cases in await repository.cases_by_state(where):
        case_groups.setdefault(case_touchpoint, []).append((status, breached, cases))

    names = {
        *histograms,
        *invitations,
        *step_counts,
        *failures,
        *(name for name in case_groups if name is not None),
    }
    per_touchpoint = {
        name: Summary(
            scores=ScoreCounts.from_histogram(histograms.get(name, {})),
            invitations_sent=invitations.get(name, 0),
            cases=CaseCounts.from_groups(case_groups.get(name, [])),
            funnel=Funnel.from_counts(
                {
                    **step_counts.get(name, {}),
                    "sent": invitations.get(name, 0),
                    "responded": details[name].responded_invitations if name in details else 0,
                }
            ),
            failed_by_reason=dict(sorted(failures.get(name, {}).items())),
            follow_up=details[name].follow_up if name in details else FollowUpAnswers(),
        )
        for name in sorted(names)
    }
    unplaced = Summary(cases=CaseCounts.from_groups(case_groups.get(None, [])))
    overall = sum(per_touchpoint.values(), unplaced)
    return overall, per_touchpoint


class ResponseView(BaseModel):
    response_id: uuid.UUID
    invitation_id: uuid.UUID
    touchpoint: str
    score: int = Field(description="the current score: a revision within the grace period replaces it")
    comment: str | None
    recommended: bool | None = Field(description="recommended us in the last 12 months")
    csat: int | None = Field(description="satisfaction, 1-5")
    effort: int | None = Field(description="effort, 1-7")
    revision: int = Field(description="1 as first given; higher once the customer added to or changed it")
    responded_at: datetime
    updated_at: datetime | None = Field(description="when the customer last changed the answer")


class ResponseList(BaseModel):
    responses: list[ResponseView]


@router.get("/v1/reports/responses")
async def list_responses(
    tenant: TenantOrPerson,
    uow: UoW,
    touchpoint: TouchpointQuery = None,
    since: Annotated[Timestamp | None, Query(description="only answers given from then on")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ResponseList:
    """The tenant's answers as they stand now, newest first: score, comment and the follow-up
    questions, each in the customer's latest revision."""
    repository: ReportingRepository = uow.repository
    rows = await repository.latest_responses(ReportFilter(tenant.tenant_id, touchpoint, since), limit)
    return ResponseList(
        responses=[
            ResponseView(
                response_id=row.response_id,
                invitation_id=row.invitation_id,
                touchpoint=row.touchpoint,
                score=row.score,
                comment=row.comment,
                recommended=row.recommended,
                csat=row.csat,
                effort=row.effort,
                revision=row.revision,
                responded_at=row.responded_at,
                updated_at=row.updated_at,
            )
            for row in rows
        ]
    )
