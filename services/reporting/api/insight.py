"""The insight panels, built from score cells: the score of a range (and how it moved since the
period before), its trend, and the table of a dimension's segments."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from libs.common.deps import UoW
from libs.common.nps import Interval, change
from libs.common.web import TenantOrPerson
from services.reporting.api.params import (
    CursorQuery,
    LimitQuery,
    Segment,
    TouchpointQuery,
    decode_cursor,
    encode_cursor,
    invalid,
    report_days,
    report_segment,
)
from services.reporting.domain.insight import (
    Bucket,
    Period,
    Score,
    SegmentSort,
    Span,
    buckets,
    counts_of,
    plan,
    plan_with_weeks,
    position_fits,
    sort_position,
    sparkline,
)
from services.reporting.repository import CellFilter, ReportingRepository

router = APIRouter(tags=["reports"])

Days = Annotated[Period, Depends(report_days)]
SegmentFilter = Annotated[Segment | None, Depends(report_segment)]


class IntervalView(BaseModel):
    """The 95 % adjusted Wald interval (``libs/common/nps.py``), in NPS points, 2 decimals."""

    low: float
    high: float
    level: float


class ScoreView(BaseModel):
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None = Field(description="-100 to 100, 2 decimals; null without answers")
    interval: IntervalView | None = Field(description="null without answers")
    too_few: bool = Field(description="fewer than 10 answers: show n rather than the score")


def interval_view(found: Interval | None) -> IntervalView | None:
    return None if found is None else IntervalView(low=found.low, high=found.high, level=found.level)


def score_view(score: Score) -> ScoreView:
    return ScoreView(
        responses=score.responses,
        promoters=score.promoters,
        passives=score.passives,
        detractors=score.detractors,
        nps=score.nps,
        interval=interval_view(score.interval),
        too_few=score.too_few,
    )


class PeriodScore(BaseModel):
    since: date
    until: date = Field(description="exclusive")
    score: ScoreView
    distribution: list[int] = Field(description="answers per score, 0 to 10")


class ChangeView(BaseModel):
    difference: float | None = Field(description="this period's NPS minus the previous one's, 2 decimals")
    interval: IntervalView | None = Field(description="95 % interval of the difference")
    significant: bool = Field(description="the interval excludes 0")
    too_few: bool = Field(description="either period has fewer than 10 answers")


class ScoresReport(PeriodScore):
    previous: PeriodScore | None = Field(description="the period of the same length just before")
    change: ChangeView | None


def _cells_of(tenant: TenantOrPerson, touchpoint: str | None, segment: Segment | None) -> CellFilter:
    if segment is None:
        return CellFilter(tenant.tenant_id, touchpoint)
    return CellFilter(tenant.tenant_id, touchpoint, segment.dimension, segment.value)


async def _period_score(repository: ReportingRepository, where: CellFilter, period: Period) -> PeriodScore:
    distribution = await repository.distribution_over(where, plan(period))
    return PeriodScore(
        since=period.since,
        until=period.until,
        score=score_view(Score.of_distribution(distribution)),
        distribution=distribution,
    )


@router.get("/v1/reports/scores")
async def get_scores(
    tenant: TenantOrPerson,
    uow: UoW,
    days: Days,
    segment: SegmentFilter,
    touchpoint: TouchpointQuery = None,
    compare: Annotated[
        Literal["previous", "none"], Query(description="compare with the period before")
    ] = "none",
) -> ScoresReport:
    """The Net Promoter Score of a range of whole UTC days (``since`` inclusive, default 90 days
    before ``until``; ``until`` exclusive, default tomorrow; a date-time counts from its date), of
    one touchpoint or all, for everybody or one ``segment`` (``dimension:value``): answers by
    category and by score, the 95 % interval, and with ``compare=previous`` the same for the period
    of the same length just before, with the difference, its interval and whether it is significant.

    Answers count by the day they were first given, as scoring announces them per day and month."""
    repository: ReportingRepository = uow.repository
    await repository.read_one_snapshot()
    where = _cells_of(tenant, touchpoint, segment)
    current = await _period_score(repository, where, days)
    if compare == "none":
        return ScoresReport(**current.model_dump(), previous=None, change=None)
    previous = await _period_score(repository, where, days.previous())
    moved = change(counts_of(previous.distribution), counts_of(current.distribution))
    return ScoresReport(
        **current.model_dump(),
        previous=previous,
        change=ChangeView(
            difference=None if moved.difference is None else round(moved.difference, 2),
            interval=interval_view(
                None
                if moved.interval is None
                else Interval(
                    round(moved.interval.low, 2), round(moved.interval.high, 2), moved.interval.level
                )
            ),
            significant=moved.significant,
            too_few=moved.too_few,
        ),
    )


class TrendPoint(BaseModel):
    start: date
    end: date = Field(description="exclusive")
    score: ScoreView


class TrendReport(BaseModel):
    bucket: Bucket
    points: list[TrendPoint]


def _buckets_or_422(bucket: Bucket, days: Period) -> list[tuple[date, date]]:
    try:
        return buckets(bucket, days)
    except ValueError as error:
        raise invalid("bucket", str(error), bucket) from error


@router.get("/v1/reports/trend")
async def get_trend(
    tenant: TenantOrPerson,
    uow: UoW,
    days: Days,
    segment: SegmentFilter,
    touchpoint: TouchpointQuery = None,
    bucket: Annotated[
        Bucket, Query(description="UTC day, ISO week (from Monday) or calendar month")
    ] = "week",
) -> TrendReport:
    """The score per day, week or month: every whole bucket overlapping the range (``since``,
    ``until`` as for ``/v1/reports/scores``), in order, those without answers included with
    ``responses`` 0. At most 400 points, else 422 naming ``bucket``."""
    found = _buckets_or_422(bucket, days)
    repository: ReportingRepository = uow.repository
    where = _cells_of(tenant, touchpoint, segment)
    by_start = await repository.distributions_by_start(where, Span(bucket, found[0][0], found[-1][1]))
    return TrendReport(
        bucket=bucket,
        points=[
            TrendPoint(
                start=start, end=end, score=score_view(Score.of_distribution(by_start.get(start, [0] * 11)))
            )
            for start, end in found
        ],
    )


class SegmentRowView(BaseModel):
    touchpoint: str
    value: str
    score: ScoreView
    sparkline: list[float | None] = Field(
        description="the NPS of each week overlapping the range, in order; null where nobody answered"
    )


class SegmentsReport(BaseModel):
    dimension: str
    rows: list[SegmentRowView]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")


def _position(sort: SegmentSort, cursor: str | None) -> list[object] | None:
    if cursor is None:
        return None
    position = decode_cursor(cursor)
    if not position_fits(sort, position):
        raise invalid("cursor", f"is not a cursor of sort={sort}", cursor)
    return position


@router.get("/v1/reports/segments")
async def get_segments(
    tenant: TenantOrPerson,
    uow: UoW,
    days: Days,
    dimension: Annotated[
        str, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="e.g. country, store, category, plan")
    ],
    touchpoint: TouchpointQuery = None,
    sort: Annotated[
        SegmentSort, Query(description="by answers, score or value; - for descending")
    ] = "-responses",
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> SegmentsReport:
    """The dimension's values, one row per touchpoint and value with answers in the range
    (``since``, ``until`` as for ``/v1/reports/scores``): the score and a weekly sparkline.
    Sorted by ``sort`` (ties by touchpoint, then value, in code-point order; values without a
    score last), ``limit`` rows a page; ``next_cursor`` fetches the next."""
    after = _position(sort, cursor)
    repository: ReportingRepository = uow.repository
    await repository.read_one_snapshot()
    where = CellFilter(tenant.tenant_id, touchpoint, dimension, None)
    rows = await repository.segment_page(where, plan_with_weeks(days), sort, after, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    weeks = buckets("week", days)
    lines = await repository.weekly_by_segment(
        where, [(row.touchpoint, row.value) for row in page], Span("week", weeks[0][0], weeks[-1][1])
    )
    last = page[-1] if page else None
    return SegmentsReport(
        dimension=dimension,
        rows=[
            SegmentRowView(
                touchpoint=row.touchpoint,
                value=row.value,
                score=score_view(Score.of_distribution(row.distribution)),
                sparkline=sparkline(weeks, lines.get((row.touchpoint, row.value), {})),
            )
            for row in page
        ],
        next_cursor=encode_cursor(sort_position(sort, last.responses, last.nps, last.touchpoint, last.value))
        if more and last is not None
        else None,
    )
