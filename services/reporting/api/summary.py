"""HTTP routes of reporting: the summary as JSON, and as the HTML the report page shows."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, Field

from libs.common.db import UnitOfWork
from libs.common.deps import UoW
from libs.common.events import FailureReason, Timestamp
from libs.common.web import TenantOrPerson
from services.reporting.api.params import checked_until
from services.reporting.domain import display
from services.reporting.domain.case_days import EXACT_PERCENTILE_CASES
from services.reporting.domain.followups import (
    BreachRow,
    FollowupReport,
    Interval,
    RecoveryRow,
    followup_report,
)
from services.reporting.domain.funnel_days import FunnelCounts
from services.reporting.domain.rollups import Tally
from services.reporting.domain.spreadsheet import text_cell as _text
from services.reporting.domain.summary import CaseCounts, FollowUpAnswers, Funnel, ScoreCounts, Summary
from services.reporting.repository import ReportFilter, ReportingRepository

router = APIRouter(tags=["reports"])

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
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
UntilQuery = Annotated[
    Timestamp | None,
    Query(description="only what happened before then (exclusive): an ISO date (UTC midnight) or date-time"),
]


@router.get("/v1/reports/summary")
async def get_summary(
    tenant: TenantOrPerson,
    uow: UoW,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> SummaryReport:
    """The tenant's results: Net Promoter Score, invitations sent, response rate, follow-up
    cases, the invitations' funnel (sent, opened by a person, opened only by a machine such as
    Apple Mail Privacy Protection, clicked, responded, reminded, bounced, unsubscribed, expired)
    and the follow-up questions (recommended in the last 12 months, CSAT,
    effort), overall and per touchpoint.

    Scores are each answer's current one: a score the customer replaced within the grace period
    counts as replaced. Invitations count from when they were sent, answers from when they were
    given, funnel steps from when they happened, cases from when they were opened. Cases whose
    opening has not reached reporting yet count in the totals only. ``since`` (inclusive) and
    ``until`` (exclusive) select by those times; ``since`` must come before ``until``.
    """
    checked_until(since, until)
    overall, per_touchpoint = await _summaries(uow, ReportFilter(tenant.tenant_id, touchpoint, since, until))
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
    until: UntilQuery = None,
) -> HTMLResponse:
    """The same summary as an HTML document, as the report page shows it: the score, answers
    and cases, the survey funnel with each step's share of the invitations sent, and the
    follow-up questions, per touchpoint and for all of them; ``since`` (inclusive) and ``until``
    (exclusive) as for ``/v1/reports/summary``."""
    checked_until(since, until)
    overall, per_touchpoint = await _summaries(uow, ReportFilter(tenant.tenant_id, touchpoint, since, until))
    page = _TEMPLATES.get_template("summary.html").render(
        fmt=display,
        scope=_scope(touchpoint, since, until),
        overall=overall,
        by_touchpoint=list(per_touchpoint.items()),
        followups=await _followup_report(uow, ReportFilter(tenant.tenant_id, touchpoint, since, until)),
    )
    return HTMLResponse(page, headers=_SUMMARY_PAGE_HEADERS)


def _scope(touchpoint: str | None, since: datetime | None, until: datetime | None = None) -> str:
    where = f"Touchpoint {touchpoint}" if touchpoint else "All touchpoints"
    when = f"since {since.isoformat()}" if since else "everything so far"
    if until is not None:
        when = f"{when} until {until.isoformat()}" if since else f"everything before {until.isoformat()}"
    return f"{where}, {when}."


async def _summaries(
    uow: UnitOfWork[ReportingRepository], where: ReportFilter
) -> tuple[Summary, dict[str, Summary]]:
    """The summary over everything the filter selects, and one per touchpoint in name order.

    Its several queries read one snapshot: under the default isolation each would see what had
    committed by then, and a batch landing in between showed its funnel steps but not its sends."""
    repository = uow.repository
    await repository.read_one_snapshot()
    tallies = await repository.answer_tallies(where)
    histograms = {
        name: {score: tally.answers for score, tally in by_score.items()}
        for name, by_score in tallies.items()
    }
    details = {name: _details(by_score.values()) for name, by_score in tallies.items()}
    funnels = await repository.funnel_by_touchpoint(where)
    case_groups: dict[str | None, list[tuple[str, bool, int]]] = {}
    for case_touchpoint, status, breached, cases in await repository.cases_by_state(where):
        case_groups.setdefault(case_touchpoint, []).append((status, breached, cases))

    names = {*histograms, *funnels, *(name for name in case_groups if name is not None)}
    no_funnel = FunnelCounts()
    per_touchpoint = {
        name: Summary(
            scores=ScoreCounts.from_histogram(histograms.get(name, {})),
            invitations_sent=funnels.get(name, no_funnel).steps.get("sent", 0),
            cases=CaseCounts.from_groups(case_groups.get(name, [])),
            funnel=Funnel.from_counts(
                {
                    **funnels.get(name, no_funnel).steps,
                    "responded": details[name].answers if name in details else 0,
                }
            ),
            failed_by_reason=funnels.get(name, no_funnel).failed_by_reason,
            follow_up=details[name].follow_up if name in details else FollowUpAnswers(),
        )
        for name in sorted(names)
    }
    unplaced = Summary(cases=CaseCounts.from_groups(case_groups.get(None, [])))
    overall = sum(per_touchpoint.values(), unplaced)
    return overall, per_touchpoint


@dataclass(frozen=True, slots=True)
class _AnswerDetails:
    #: Answers, which is also the invitations answered: the survey derives an answer's id from its
    #: invitation's (``response_id_for``), so an invitation has one answer.
    answers: int
    follow_up: FollowUpAnswers


def _details(tallies: Iterable[Tally]) -> _AnswerDetails:
    total = sum(tallies, Tally())
    return _AnswerDetails(
        answers=total.answers,
        follow_up=FollowUpAnswers(
            recommended_yes=total.recommended_yes,
            recommended_answers=total.recommended_answers,
            csat_total=total.csat_total,
            csat_answers=total.csat_answers,
            effort_total=total.effort_total,
            effort_answers=total.effort_answers,
        ),
    )


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
    until: Annotated[
        Timestamp | None, Query(description="only answers given before then (exclusive)")
    ] = None,
) -> ResponseList:
    """The tenant's answers as they stand now, newest first: score, comment and the follow-up
    questions, each in the customer's latest revision. ``since`` (inclusive) and ``until``
    (exclusive) select them by when they were first given."""
    checked_until(since, until)
    repository: ReportingRepository = uow.repository
    rows = await repository.latest_responses(ReportFilter(tenant.tenant_id, touchpoint, since, until), limit)
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


class IntervalView(BaseModel):
    """A 95 % Wilson score interval for a share (0-1, rounded to 4 decimals)."""

    low: float
    high: float


class BreachView(BaseModel):
    name: str = Field(
        description="the owner (Unassigned when nobody owns the case), the team (No team) or the "
        "touchpoint (Unknown while only an older-style update of the case has arrived)"
    )
    cases: int = Field(description="cases of this owner, team or touchpoint")
    breached: int = Field(description="of them, cases not contacted by their due time, resolved since or not")
    share_of_breaches: float | None = Field(
        description="this group's share of all breaches (0-1, 4 decimals); null when nothing breached"
    )
    breach_rate: float | None = Field(description="breached of this group's cases (0-1, 4 decimals)")


class RecoveryView(BaseModel):
    group: str = Field(
        description="by contact speed: 'within 24 h' (first contact at most 86,400 s after opening), "
        "'later' or 'never contacted'; by root cause: the cause, or 'Not recorded'"
    )
    n: int = Field(description="cases whose customer answered the recovery survey: small n, wide interval")
    recovered: int = Field(description="of them, customers now passive or promoter (recovery score 7-10)")
    rate: float | None = Field(description="recovered / n (0-1, 4 decimals); null when n is 0")
    interval_95: IntervalView | None = Field(
        description="95 % Wilson score interval of the rate; null when n is 0"
    )


class FollowupReportView(BaseModel):
    cases: int = Field(description="follow-up cases selected, open or not")
    contacted: int = Field(description="cases whose customer was reached (time to first contact known)")
    contact_hours_p50: float | None = Field(
        description="median hours from opening to first contact over contacted cases (linear "
        "interpolation between ranks, as percentile_cont; 2 decimals); null when none was contacted"
    )
    contact_hours_p90: float | None = Field(description="90th percentile of the same, as the median")
    within_sla: int = Field(description="cases first contacted within the SLA's first-contact time")
    sla_known: int = Field(
        description="cases whose SLA outcome is known: contacted ones that say whether in time, and "
        "breached ones (a breach is a missed first contact)"
    )
    within_sla_share: float | None = Field(
        description="within_sla / sla_known (0-1, 4 decimals); null when no outcome is known"
    )
    breached: int = Field(description="cases not contacted by their due time, resolved since or not")
    resolved: int
    resolution_hours_p50: float | None = Field(
        description="median hours from opening to resolution over resolved cases; null when none was"
    )
    resolution_hours_p90: float | None = Field(description="90th percentile of the same")
    percentiles: Literal["exact", "approximate (within 1 %)"] = Field(
        description="how the four percentiles were taken: 'exact' (percentile_cont over the cases) "
        f"while the range holds at most {EXACT_PERCENTILE_CASES:,} cases, else from the cases' "
        "log-bucketed histogram, each within 1 % of the exact value"
    )
    recovery: RecoveryView = Field(description="every case with a recovery score (group 'all')")
    breaches_by_owner: list[BreachView] = Field(description="most breaches first, then by name")
    breaches_by_team: list[BreachView]
    breaches_by_touchpoint: list[BreachView]
    recovery_by_contact_speed: list[RecoveryView] = Field(
        description="always the three groups, in the order within 24 h, later, never contacted"
    )
    recovery_by_root_cause: list[RecoveryView] = Field(description="largest n first, then by cause")


async def _followup_report(uow: UnitOfWork[ReportingRepository], where: ReportFilter) -> FollowupReport:
    """The report from three grouped queries; the caller starts the transaction's snapshot first."""
    repository = uow.repository
    return followup_report(
        await repository.case_totals(where),
        await repository.case_breakdown(where),
        await repository.recovery_scores(where),
    )


def _interval_view(interval: Interval | None) -> IntervalView | None:
    return (
        None if interval is None else IntervalView(low=round(interval.low, 4), high=round(interval.high, 4))
    )


def _recovery_view(row: RecoveryRow) -> RecoveryView:
    return RecoveryView(
        group=row.group,
        n=row.n,
        recovered=row.recovered,
        rate=_rounded(row.rate, 4),
        interval_95=_interval_view(row.interval),
    )


def _breach_views(rows: list[BreachRow]) -> list[BreachView]:
    return [
        BreachView(
            name=row.name,
            cases=row.cases,
            breached=row.breached,
            share_of_breaches=_rounded(row.share_of_breaches, 4),
            breach_rate=_rounded(row.breach_rate, 4),
        )
        for row in rows
    ]


def _followup_view(report: FollowupReport) -> FollowupReportView:
    totals = report.totals
    (contact_p50, contact_p90), (resolution_p50, resolution_p90) = (
        report.contact_hours,
        report.resolution_hours,
    )
    return FollowupReportView(
        cases=totals.cases,
        contacted=totals.contacted,
        contact_hours_p50=_rounded(contact_p50, 2),
        contact_hours_p90=_rounded(contact_p90, 2),
        within_sla=totals.within_sla,
        sla_known=totals.sla_known,
        within_sla_share=_rounded(report.within_sla_share, 4),
        breached=totals.breached,
        resolved=totals.resolved,
        resolution_hours_p50=_rounded(resolution_p50, 2),
        resolution_hours_p90=_rounded(resolution_p90, 2),
        percentiles="exact" if totals.exact_percentiles else "approximate (within 1 %)",
        recovery=_recovery_view(report.recovery_overall),
        breaches_by_owner=_breach_views(report.breaches_by_owner),
        breaches_by_team=_breach_views(report.breaches_by_team),
        breaches_by_touchpoint=_breach_views(report.breaches_by_touchpoint),
        recovery_by_contact_speed=[_recovery_view(row) for row in report.recovery_by_contact_speed],
        recovery_by_root_cause=[_recovery_view(row) for row in report.recovery_by_root_cause],
    )


@router.get("/v1/reports/followups")
async def get_followups(
    tenant: TenantOrPerson,
    uow: UoW,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> FollowupReportView:
    """Did following up work? Over the tenant's follow-up cases: time to first contact (p50, p90),
    the share contacted within the SLA, breaches by owner, team and touchpoint, time to
    resolution, and the recovery rate (customers passive or promoter in the recovery survey) by
    how fast they were contacted and by root cause, each with n and a 95 % Wilson interval.

    Cases count from when they were opened (from their first update while the opening has not
    reached reporting): ``since`` (inclusive) and ``until`` (exclusive) select by that time. The
    same rows as CSV: ``GET /v1/reports/followups.csv``."""
    checked_until(since, until)
    await uow.repository.read_one_snapshot()
    report = await _followup_report(uow, ReportFilter(tenant.tenant_id, touchpoint, since, until))
    return _followup_view(report)


#: The CSV's columns; a cell that does not apply to the row's breakdown is empty.
FOLLOWUP_CSV_COLUMNS = (
    "breakdown",
    "group",
    "cases",
    "breached",
    "share_of_breaches",
    "breach_rate",
    "recovery_n",
    "recovered",
    "recovery_rate",
    "recovery_ci_low",
    "recovery_ci_high",
)


@router.get(
    "/v1/reports/followups.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per group, header first"}},
)
async def get_followups_csv(
    tenant: TenantOrPerson,
    uow: UoW,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> Response:
    """The follow-up report's breakdowns as CSV (RFC 4180, UTF-8, header row): breakdown
    (breaches_by_owner, breaches_by_team, breaches_by_touchpoint, recovery_by_contact_speed,
    recovery_by_root_cause), group, cases, breached, share_of_breaches, breach_rate, recovery_n,
    recovered, recovery_rate, recovery_ci_low, recovery_ci_high. Shares are 0-1. ``since`` and
    ``until`` (exclusive) as for ``/v1/reports/followups``."""
    checked_until(since, until)
    await uow.repository.read_one_snapshot()
    report = await _followup_report(uow, ReportFilter(tenant.tenant_id, touchpoint, since, until))
    return Response(_followup_csv(_followup_view(report)), media_type="text/csv; charset=utf-8")


def _followup_csv(view: FollowupReportView) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FOLLOWUP_CSV_COLUMNS)
    breakdowns = (
        ("breaches_by_owner", view.breaches_by_owner),
        ("breaches_by_team", view.breaches_by_team),
        ("breaches_by_touchpoint", view.breaches_by_touchpoint),
    )
    for breakdown, breaches in breakdowns:
        for breach in breaches:
            shares = (_cell(breach.share_of_breaches), _cell(breach.breach_rate))
            writer.writerow(
                (breakdown, _text(breach.name), breach.cases, breach.breached, *shares, *("",) * 5)
            )
    recoveries = (
        ("recovery_by_contact_speed", view.recovery_by_contact_speed),
        ("recovery_by_root_cause", view.recovery_by_root_cause),
    )
    for breakdown, groups in recoveries:
        for group in groups:
            interval = group.interval_95
            bounds = ("", "") if interval is None else (interval.low, interval.high)
            recovery = (group.n, group.recovered, _cell(group.rate), *bounds)
            writer.writerow((breakdown, _text(group.group), *("",) * 4, *recovery))
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else str(value)
