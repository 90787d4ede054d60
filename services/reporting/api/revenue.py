"""Revenue at risk, and the tenant's churn probabilities it is reckoned with.

Built from the score cells as the scores panel is (the same month+day plan over whole UTC days):
each cell keeps, per currency, the 12-month spend snapshots of its answers by NPS group, as
scoring announced them. Amounts are never converted: each currency stands apart.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from libs.common.deps import UoW, _api_key_header, _bearer, require_tenant
from libs.common.http import error_responses
from libs.common.sessions import csrf_ok
from libs.common.tenancy import TenantContext
from libs.common.web import TenantOrPerson, current_person
from services.reporting.api.params import Segment, TouchpointQuery, invalid, report_days, report_segment
from services.reporting.domain.insight import Period, Span, plan, sort_position
from services.reporting.domain.revenue import (
    DEFAULT_DETRACTOR_CHURN,
    DEFAULT_PASSIVE_CHURN,
    ChurnProbability,
    Counted,
    Risk,
    counted,
    grouped,
)
from services.reporting.repository import CellFilter, ReportingRepository, SegmentRow

router = APIRouter(tags=["reports"])

Days = Annotated[Period, Depends(report_days)]
SegmentFilter = Annotated[Segment | None, Depends(report_segment)]
#: Who may change the report's settings when signed in rather than calling with an API key.
SETTINGS_ROLES = frozenset({"cx_manager", "admin"})
CSRF_HEADER = "X-CSRF-Token"
#: The (touchpoint, value) rows the answer counts beside the spend are read in, per page.
COUNTED_PAGE = 1000


class Probabilities(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detractor: float = Field(
        default=DEFAULT_DETRACTOR_CHURN,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="share of detractors expected to leave",
    )
    passive: float = Field(
        default=DEFAULT_PASSIVE_CHURN,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="share of passives expected to leave",
    )


class ReportSettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    churn_probability: Probabilities


class ReportSettingsView(ReportSettingsBody):
    updated_at: datetime | None = Field(description="when the tenant set them; null: the defaults")


def _view(probability: ChurnProbability, updated_at: datetime | None) -> ReportSettingsView:
    return ReportSettingsView(
        churn_probability=Probabilities(detractor=probability.detractor, passive=probability.passive),
        updated_at=updated_at,
    )


async def settings_editor(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> TenantContext:
    """The tenant's API key, or a signed-in CX manager or admin of the tenant whose request carries
    the session's CSRF token in ``X-CSRF-Token`` (a cookie alone could be a forged request)."""
    if api_key is None and bearer is None:
        person = await current_person(request)
        if person is not None:
            if person.role not in SETTINGS_ROLES:
                raise HTTPException(403, "only a CX manager or an admin changes the report's settings")
            if not csrf_ok(person.token, request.headers.get(CSRF_HEADER)):
                raise HTTPException(403, f"the {CSRF_HEADER} header is missing or not this session's")
            return TenantContext(tenant_id=person.tenant_id, key_id=f"session:{person.session_id}")
    return await require_tenant(request, bearer, api_key)


@router.get("/v1/reports/settings")
async def get_report_settings(tenant: TenantOrPerson, uow: UoW) -> ReportSettingsView:
    """The tenant's churn probabilities for revenue at risk (the defaults, detractor 0.3 and
    passive 0, until it sets them)."""
    repository: ReportingRepository = uow.repository
    return _view(*await repository.churn_probability(tenant.tenant_id))


@router.put("/v1/reports/settings", responses=error_responses(403))
async def put_report_settings(
    body: ReportSettingsBody, tenant: Annotated[TenantContext, Depends(settings_editor)], uow: UoW
) -> ReportSettingsView:
    """Set the churn probabilities (each 0 to 1; one left out takes its default). With the
    tenant's API key, or signed in as a CX manager or admin (with the ``X-CSRF-Token`` header)."""
    probability = ChurnProbability(body.churn_probability.detractor, body.churn_probability.passive)
    now = datetime.now(UTC)
    repository: ReportingRepository = uow.repository
    await repository.set_churn_probability(tenant.tenant_id, probability, now)
    await uow.commit()
    return _view(probability, now)


class CurrencyRisk(BaseModel):
    currency: str = Field(description="ISO 4217; amounts are never converted")
    detractor_spend_minor: int = Field(description="the detractors' 12-month spend, in minor units")
    detractor_spend: str = Field(description="the same in major units, with the currency's decimals")
    passive_spend_minor: int
    passive_spend: str
    revenue_at_risk_minor: int = Field(description="rounded to a whole minor unit, half to even")
    revenue_at_risk: str


class AnswersCounted(BaseModel):
    detractors: int = Field(description="detractors' answers (0-6), with a spend snapshot or not")
    passives: int = Field(description="passives' answers (7-8), with a spend snapshot or not")


class TouchpointRisk(BaseModel):
    touchpoint: str
    currencies: list[CurrencyRisk]
    answers: AnswersCounted


class SegmentRisk(BaseModel):
    value: str
    currencies: list[CurrencyRisk]
    answers: AnswersCounted


class RevenueReport(BaseModel):
    since: date
    until: date = Field(description="exclusive")
    churn_probability: Probabilities = Field(description="the tenant's setting the risk is reckoned with")
    currencies: list[CurrencyRisk] = Field(description="overall, per currency")
    answers: AnswersCounted = Field(description="overall: the answers the spend is of")
    touchpoints: list[TouchpointRisk]
    dimension: str | None
    segments: list[SegmentRisk] | None = Field(description="per value of the dimension; null without one")


def _currency(risk: Risk) -> CurrencyRisk:
    return CurrencyRisk(
        currency=risk.currency,
        detractor_spend_minor=risk.detractors_minor,
        detractor_spend=f"{risk.detractors:f}",
        passive_spend_minor=risk.passives_minor,
        passive_spend=f"{risk.passives:f}",
        revenue_at_risk_minor=risk.at_risk_minor,
        revenue_at_risk=f"{risk.at_risk:f}",
    )


def _answers(found: Counted | None) -> AnswersCounted:
    found = found or Counted()
    return AnswersCounted(detractors=found.detractors, passives=found.passives)


async def _counted_by(
    repository: ReportingRepository, where: CellFilter, spans: list[Span], by: Literal["touchpoint", "value"]
) -> dict[str, Counted]:
    """The answers per touchpoint or per value, from the segments table's query (one row per
    touchpoint and value), page after page until the last."""
    rows: list[SegmentRow] = []
    after: list[object] | None = None
    while True:
        page = await repository.segment_page(where, spans, "value", after, COUNTED_PAGE)
        rows.extend(page)
        if len(page) < COUNTED_PAGE:
            return counted(
                (row.touchpoint if by == "touchpoint" else row.value, row.distribution) for row in rows
            )
        last = page[-1]
        after = sort_position("value", last.responses, last.nps, last.touchpoint, last.value)


def _filter(tenant: TenantContext, touchpoint: str | None, segment: Segment | None) -> CellFilter:
    if segment is None:
        return CellFilter(tenant.tenant_id, touchpoint)
    return CellFilter(tenant.tenant_id, touchpoint, segment.dimension, segment.value)


@router.get("/v1/reports/revenue")
async def get_revenue(
    tenant: TenantOrPerson,
    uow: UoW,
    days: Days,
    segment: SegmentFilter,
    touchpoint: TouchpointQuery = None,
    dimension: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z][a-z0-9_]{0,39}$", description="also per value of this dimension, e.g. country"
        ),
    ] = None,
) -> RevenueReport:
    """Revenue at risk over a range of whole UTC days (``since``, ``until`` as for
    ``/v1/reports/scores``), of one touchpoint or all, for everybody or one ``segment``: per
    currency, the detractors' and passives' 12-month spend (a snapshot taken when each was asked)
    and detractors' spend x P(detractor churns) + passives' spend x P(passive churns), with the
    tenant's probabilities (``/v1/reports/settings``). Overall, per touchpoint and, with
    ``dimension``, per value of that dimension (not with ``segment``: choose one)."""
    if dimension is not None and segment is not None:
        raise invalid("dimension", "choose either segment or dimension", dimension)
    repository: ReportingRepository = uow.repository
    await repository.read_one_snapshot()
    probability, _ = await repository.churn_probability(tenant.tenant_id)
    where, spans = _filter(tenant, touchpoint, segment), plan(days)
    overall = grouped(await repository.spend_over(where, spans, "all"), probability)
    everybody = counted([("", await repository.distribution_over(where, spans))])
    touchpoints = grouped(await repository.spend_over(where, spans, "touchpoint"), probability)
    per_touchpoint = await _counted_by(repository, where, spans, "touchpoint")
    return RevenueReport(
        since=days.since,
        until=days.until,
        churn_probability=Probabilities(detractor=probability.detractor, passive=probability.passive),
        currencies=[_currency(risk) for risk in overall.get("", [])],
        answers=_answers(everybody.get("")),
        touchpoints=[
            TouchpointRisk(
                touchpoint=name,
                currencies=[_currency(r) for r in risks],
                answers=_answers(per_touchpoint.get(name)),
            )
            for name, risks in touchpoints.items()
        ],
        dimension=dimension,
        segments=None
        if dimension is None
        else await _segments(
            repository, CellFilter(tenant.tenant_id, touchpoint, dimension, None), spans, probability
        ),
    )


async def _segments(
    repository: ReportingRepository, by_value: CellFilter, spans: list[Span], probability: ChurnProbability
) -> list[SegmentRisk]:
    """Per value of the filter's dimension, across the touchpoints it holds."""
    found = grouped(await repository.spend_over(by_value, spans, "value"), probability)
    per_value = await _counted_by(repository, by_value, spans, "value")
    return [
        SegmentRisk(
            value=value, currencies=[_currency(r) for r in risks], answers=_answers(per_value.get(value))
        )
        for value, risks in found.items()
    ]
