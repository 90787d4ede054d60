"""Whether promoters really come back: the repurchase rate within N days of answering, by NPS
group, from the tenant's own later purchases (the rules: ``services/reporting/domain/repurchase.py``).

The window is one of those the daily rollup ``reporting.repurchase_days`` keeps (7, 14, 30, 60,
90, 180, 365 days): the whole days are read from it, only the day of the cut-off (and a partial
first or last day) from the answers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel, Field

from libs.common.deps import UoW
from libs.common.events import NpsCategory
from libs.common.web import TenantOrPerson
from services.reporting.api.params import TouchpointQuery, report_days
from services.reporting.domain.insight import Period
from services.reporting.domain.repurchase import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    WINDOWS,
    GroupRate,
    answered_by,
    check_window,
    counts_by_group,
    rates,
)
from services.reporting.repository import ReportFilter, ReportingRepository

router = APIRouter(tags=["reports"])

Days = Annotated[Period, Depends(report_days)]
WindowQuery = Annotated[
    int,
    Query(
        ge=MIN_DAYS,
        le=MAX_DAYS,
        description=f"bought again within this many days of answering (one of "
        f"{', '.join(map(str, WINDOWS))}); only answers at least this old count",
        json_schema_extra={"enum": list(WINDOWS)},
    ),
    AfterValidator(check_window),
]
#: The confidence level of the Wilson interval (``Z_95``).
LEVEL = 0.95


class RateInterval(BaseModel):
    """A 95 % Wilson score interval of the rate (0-1, 4 decimals)."""

    low: float
    high: float
    level: float


class GroupView(BaseModel):
    group: NpsCategory
    answers: int = Field(description="answers of this group whose N days have passed")
    repurchased: int = Field(description="of them, the customers who bought again within N days")
    rate: float | None = Field(description="repurchased / answers (0-1, 4 decimals); null without answers")
    interval: RateInterval | None = Field(
        description="95 % Wilson interval of the rate; null without answers"
    )


class RepurchaseReport(BaseModel):
    days: int
    since: date
    until: date
    answered_by: datetime = Field(description="only answers given at or before this (now - days) count")
    groups: list[GroupView] = Field(description="promoter, passive, detractor, always all three")


def _view(rate: GroupRate) -> GroupView:
    interval = rate.interval
    return GroupView(
        group=rate.group,
        answers=rate.answers,
        repurchased=rate.repurchased,
        rate=None if rate.rate is None else round(rate.rate, 4),
        interval=None
        if interval is None
        else RateInterval(low=round(interval.low, 4), high=round(interval.high, 4), level=LEVEL),
    )


@router.get("/v1/reports/repurchase")
async def get_repurchase(
    tenant: TenantOrPerson,
    uow: UoW,
    range_: Days,
    touchpoint: TouchpointQuery = None,
    days: WindowQuery = DEFAULT_DAYS,
) -> RepurchaseReport:
    """Do promoters really come back? Of the answers given in a range of whole UTC days (``since``
    inclusive, default 90 days before ``until``; ``until`` exclusive, default tomorrow), of one
    touchpoint or all, by the NPS group of each answer's current score: how many customers bought
    from the tenant again within ``days`` (7, 14, 30, 60, 90, 180 or 365; default 90) of
    answering, and the rate with its 95 % Wilson interval.

    Only answers whose ``days`` have fully passed count (given at or before now minus ``days``):
    a younger answer could still come back. A purchase counts when it is later than the answer
    (the order a survey asked about does not); purchases are the tenant's own, as the trigger
    recorded them."""
    repository: ReportingRepository = uow.repository
    await repository.read_one_snapshot()
    cutoff = answered_by(datetime.now(UTC), days)
    where = ReportFilter(
        tenant_id=tenant.tenant_id,
        touchpoint=touchpoint,
        since=datetime.combine(range_.since, time(), tzinfo=UTC),
        until=datetime.combine(range_.until, time(), tzinfo=UTC),
    )
    counts = counts_by_group(await repository.repurchase_counts(where, cutoff, days))
    return RepurchaseReport(
        days=days,
        since=range_.since,
        until=range_.until,
        answered_by=cutoff,
        groups=[_view(rate) for rate in rates(counts)],
    )
