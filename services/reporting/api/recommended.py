"""The recommended panel: by score, how many customers say they actually recommended us."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from libs.common.deps import UoW
from libs.common.events import NpsCategory
from libs.common.web import TenantOrPerson
from services.reporting.api.params import TouchpointQuery, report_days
from services.reporting.domain.insight import Period
from services.reporting.domain.rollups import RecommendedRow, recommended_by_group, recommended_by_score

router = APIRouter(tags=["reports"])

Days = Annotated[Period, Depends(report_days)]
#: The Wilson interval's confidence level.
LEVEL = 0.95


class ShareInterval(BaseModel):
    """A 95 % Wilson score interval for a share (0-1, 4 decimals)."""

    low: float
    high: float
    level: float


class RecommendedCounts(BaseModel):
    answered: int = Field(description="answers that said whether they recommended us in the last 12 months")
    recommended: int = Field(description="of them, those who said yes")
    share: float | None = Field(
        description="recommended / answered (0-1, 4 decimals); null when none answered"
    )
    interval: ShareInterval | None = Field(
        description="95 % Wilson interval of the share; null when none answered"
    )


class ScoreRecommended(RecommendedCounts):
    score: int = Field(description="the answer's current score, 0-10")


class GroupRecommended(RecommendedCounts):
    group: NpsCategory = Field(description="promoter (9-10), passive (7-8) or detractor (0-6)")


class RecommendedReport(BaseModel):
    since: date
    until: date = Field(description="exclusive")
    by_score: list[ScoreRecommended] = Field(description="every score 0 to 10, in order, empty ones included")
    by_group: list[GroupRecommended] = Field(description="promoters, passives, detractors")


def _counts(row: RecommendedRow) -> dict[str, object]:
    interval = row.interval
    return {
        "answered": row.answered,
        "recommended": row.recommended,
        "share": None if row.share is None else round(row.share, 4),
        "interval": (
            None
            if interval is None
            else ShareInterval(low=round(interval.low, 4), high=round(interval.high, 4), level=LEVEL)
        ),
    }


@router.get("/v1/reports/recommended")
async def get_recommended(
    tenant: TenantOrPerson, uow: UoW, days: Days, touchpoint: TouchpointQuery = None
) -> RecommendedReport:
    """Do promoters actually recommend us? For each score 0-10, and for promoters, passives and
    detractors, how many answered the follow-up question "have you actually recommended us in the
    last 12 months?", how many said yes, and the share of yes with its 95 % Wilson interval (a
    small n gives a wide interval). A blank answer is left out, neither yes nor no.

    The likelihood to recommend is not the act: the seeds' finding, that only about half of the
    customers who scored 10 had actually recommended us in the last 12 months, is what this panel
    shows for each tenant, score by score.

    Counted from the daily rollup of answers, by each answer's current score and follow-up
    answers, in whole UTC days by when the customer first answered: ``since`` (inclusive) and
    ``until`` (exclusive) are ISO dates or date-times (a date-time counts from its date), by default
    the 90 days up to today, at most 1096 days; ``touchpoint`` for one touchpoint only."""
    by_score = await uow.repository.answer_days_by_score(tenant.tenant_id, touchpoint, days.since, days.until)
    return RecommendedReport(
        since=days.since,
        until=days.until,
        by_score=[
            ScoreRecommended(score=score, **_counts(row))
            for score, row in enumerate(recommended_by_score(by_score))
        ],
        by_group=[
            GroupRecommended(group=group, **_counts(row))
            for group, row in recommended_by_group(by_score).items()
        ],
    )
