"""The insight panels' rules: which cells sum to a range, the trend's buckets, the previous period,
the sparkline and the score's shape."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.nps import Counts, interval
from services.reporting.domain.insight import (
    MAX_POINTS,
    Bucket,
    Period,
    Score,
    added,
    bucket_end,
    bucket_start,
    buckets,
    counts_of,
    plan,
    plan_with_weeks,
    position_fits,
    sort_position,
    sparkline,
)

pytestmark = pytest.mark.unit

DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))
BUCKETS: st.SearchStrategy[Bucket] = st.sampled_from(["day", "week", "month"])


@st.composite
def periods(draw: st.DrawFn, longest: int = 1096) -> Period:
    since = draw(DAYS)
    return Period(since, since + timedelta(days=draw(st.integers(1, longest))))


def days_of(bucket: Bucket, start: date) -> list[date]:
    end = bucket_end(bucket, start)
    return [start + timedelta(days=n) for n in range((end - start).days)]


@given(periods())
def test_the_plan_covers_each_day_of_the_period_exactly_once(period: Period) -> None:
    covered: Counter[date] = Counter()
    for span in plan(period):
        start = span.first
        while start < span.stop:
            assert bucket_start(span.bucket, start) == start, "a cell of the plan is a whole bucket"
            covered.update(days_of(span.bucket, start))
            start = bucket_end(span.bucket, start)
        assert start == span.stop
    wanted = [period.since + timedelta(days=n) for n in range(period.days)]
    assert covered == Counter(wanted)


@given(periods())
def test_the_plan_reads_few_cells(period: Period) -> None:
    """Whole months as months: at most ~30 days on either side."""
    day_cells = sum((span.stop - span.first).days for span in plan(period) if span.bucket == "day")
    assert day_cells <= 61


@given(periods())
def test_the_segments_plan_covers_each_day_once_with_weeks_for_the_days_beside_the_months(
    period: Period,
) -> None:
    covered: Counter[date] = Counter()
    spans = plan_with_weeks(period)
    for span in spans:
        start = span.first
        while start < span.stop:
            assert bucket_start(span.bucket, start) == start, "a cell of the plan is a whole bucket"
            covered.update(days_of(span.bucket, start))
            start = bucket_end(span.bucket, start)
        assert start == span.stop
    assert covered == Counter(period.since + timedelta(days=n) for n in range(period.days))
    # At most 6 days before and after each run of weeks; at most 4 weeks beside each month run.
    assert sum((span.stop - span.first).days for span in spans if span.bucket == "day") <= 24


def test_the_segments_plan_reads_the_days_beside_the_months_as_weeks_where_whole() -> None:
    # 2026-01-30 is a Friday; 2026-04-02 a Thursday, after the Monday 2026-03-30.
    assert [
        (s.bucket, s.first, s.stop) for s in plan_with_weeks(Period(date(2026, 1, 30), date(2026, 4, 2)))
    ] == [
        ("day", date(2026, 1, 30), date(2026, 2, 1)),
        ("month", date(2026, 2, 1), date(2026, 4, 1)),
        ("day", date(2026, 4, 1), date(2026, 4, 2)),
    ]
    assert [
        (s.bucket, s.first, s.stop) for s in plan_with_weeks(Period(date(2026, 11, 4), date(2026, 12, 2)))
    ] == [
        ("day", date(2026, 11, 4), date(2026, 11, 9)),
        ("week", date(2026, 11, 9), date(2026, 11, 30)),
        ("day", date(2026, 11, 30), date(2026, 12, 2)),
    ]


def test_a_range_inside_one_month_is_days_and_whole_months_are_months() -> None:
    assert [(s.bucket, s.first, s.stop) for s in plan(Period(date(2026, 3, 5), date(2026, 3, 9)))] == [
        ("day", date(2026, 3, 5), date(2026, 3, 9))
    ]
    assert [(s.bucket, s.first, s.stop) for s in plan(Period(date(2026, 1, 30), date(2026, 4, 2)))] == [
        ("day", date(2026, 1, 30), date(2026, 2, 1)),
        ("month", date(2026, 2, 1), date(2026, 4, 1)),
        ("day", date(2026, 4, 1), date(2026, 4, 2)),
    ]


@given(BUCKETS, periods(longest=400))
def test_the_trend_has_the_whole_buckets_overlapping_the_range_in_order(
    bucket: Bucket, period: Period
) -> None:
    try:
        found = buckets(bucket, period)
    except ValueError:
        assert bucket == "day" and period.days > MAX_POINTS
        return
    assert found[0][0] <= period.since < found[0][1]
    assert found[-1][0] < period.until <= found[-1][1]
    for (_, end), (next_start, _) in itertools.pairwise(found):
        assert end == next_start
    for start, end in found:
        assert bucket_start(bucket, start) == start and bucket_end(bucket, start) == end


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    period = Period(date(2026, 12, 2), date(2027, 1, 2))  # a Wednesday to a Saturday
    assert buckets("week", period)[0] == (date(2026, 11, 30), date(2026, 12, 7))
    assert buckets("week", period)[-1] == (date(2026, 12, 28), date(2027, 1, 4))
    assert buckets("month", period) == [
        (date(2026, 12, 1), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2027, 2, 1)),
    ]


def test_more_than_400_points_is_refused() -> None:
    with pytest.raises(ValueError, match="400"):
        buckets("day", Period(date(2026, 1, 1), date(2027, 2, 6)))
    assert len(buckets("day", Period(date(2026, 1, 1), date(2027, 2, 5)))) == MAX_POINTS
    assert len(buckets("week", Period(date(2024, 1, 1), date(2027, 1, 1)))) <= MAX_POINTS


@given(periods())
def test_the_previous_period_has_the_same_length_and_ends_where_this_starts(period: Period) -> None:
    before = period.previous()
    assert before.days == period.days and before.until == period.since


def test_a_period_ends_after_it_starts() -> None:
    with pytest.raises(ValueError):
        Period(date(2026, 1, 2), date(2026, 1, 2))


@given(st.lists(st.integers(0, 1000), min_size=11, max_size=11))
def test_a_score_counts_9_and_10_as_promoters_and_0_to_6_as_detractors(distribution: list[int]) -> None:
    score = Score.of_distribution(distribution)
    assert score.promoters == distribution[9] + distribution[10]
    assert score.passives == distribution[7] + distribution[8]
    assert score.detractors == sum(distribution[:7])
    assert score.responses == sum(distribution)
    assert score.too_few == (sum(distribution) < 10)
    if score.responses == 0:
        assert score.nps is None and score.interval is None
    else:
        assert score.nps is not None and round(score.nps, 2) == score.nps
        assert score.interval is not None and -100 <= score.interval.low <= score.interval.high <= 100


def test_the_score_rounds_the_nps_and_takes_the_shared_interval() -> None:
    score = Score.of(Counts(promoters=2, passives=0, detractors=1))
    assert score.nps == 33.33
    exact = interval(Counts(2, 0, 1))
    assert exact is not None and score.interval is not None
    assert score.interval.low == round(exact.low, 2) and score.interval.high == round(exact.high, 2)
    assert score.interval.level == 0.95 and score.too_few


def test_distributions_add_score_by_score() -> None:
    assert added([]) == [0] * 11
    assert added([[1] * 11, list(range(11))]) == [n + 1 for n in range(11)]
    assert counts_of([0] * 6 + [1, 1, 0, 0, 2]) == Counts(promoters=2, passives=1, detractors=1)
    with pytest.raises(ValueError):
        counts_of([1, 2])


def test_the_sparkline_has_a_point_per_week_and_none_where_nobody_answered() -> None:
    weeks = buckets("week", Period(date(2026, 3, 2), date(2026, 3, 23)))
    line = sparkline(weeks, {date(2026, 3, 9): [0] * 10 + [3], date(2026, 3, 16): [1] + [0] * 9 + [2]})
    assert line == [None, 100.0, 33.33]


def test_a_cursor_is_a_position_of_its_sort_with_values_the_database_can_compare() -> None:
    assert position_fits("-responses", sort_position("-responses", 12, 50.0, "web", "DK"))
    assert position_fits("nps", sort_position("nps", 0, None, "web", "DK"))
    assert position_fits("-value", sort_position("-value", 3, 1.0, "web", "DK"))
    assert not position_fits("nps", sort_position("responses", 12, 50.0, "web", "DK"))
    assert not position_fits("responses", [True, "web", "DK"])
    assert not position_fits("responses", [2**70, "web", "DK"])
    assert not position_fits("nps", [False, float("nan"), "web", "DK"])
    assert not position_fits("value", ["D\x00K", "web"])
    assert not position_fits("value", [])
