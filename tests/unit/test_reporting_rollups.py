"""The daily rollup of answers: deltas that keep it equal to a recount of the stored answers whatever
the order and repeats of the revisions, the plan that reads whole days from it and only the partial
edges from the answers, and the recommended panel's rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import NpsCategory
from services.reporting.domain.followups import wilson_interval
from services.reporting.domain.rollups import (
    GROUPS,
    AnswerVersion,
    DayKey,
    Edge,
    ReadPlan,
    Tally,
    delta,
    kept,
    read_plan,
    recommended_by_group,
    recommended_by_score,
    row_of,
    tally_of,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 1, tzinfo=UTC)
MOMENTS = st.integers(0, 4 * 24 * 60).map(lambda minutes: START + timedelta(minutes=minutes))


@st.composite
def revisions(draw: st.DrawFn, answer: int) -> tuple[int, AnswerVersion]:
    """One version of answer ``answer``: the first (revision 1) or a revision that may change the
    score and touchpoint and add the follow-up questions. Every version carries the first time."""
    revision = draw(st.integers(1, 4))
    return answer, AnswerVersion(
        touchpoint=draw(st.sampled_from(["checkout", "support"])),
        # Each answer's first time; a revision arriving first carries the same.
        responded_at=START + timedelta(hours=7 * answer),
        score=draw(st.integers(0, 10)),
        revision=revision,
        recommended=None if revision == 1 else draw(st.none() | st.booleans()),
        csat=None if revision == 1 else draw(st.none() | st.integers(1, 5)),
        effort=None if revision == 1 else draw(st.none() | st.integers(1, 7)),
    )


@st.composite
def arrivals(draw: st.DrawFn) -> list[tuple[int, AnswerVersion]]:
    """Versions of a few answers in any order, with repeats (redeliveries) of some."""
    versions = [
        version
        for answer in range(draw(st.integers(1, 6)))
        for version in draw(st.lists(revisions(answer), max_size=5))
    ]
    repeats = draw(st.lists(st.sampled_from(versions), max_size=4)) if versions else []
    return draw(st.permutations(versions + repeats))


def group_by(stored: dict[int, AnswerVersion]) -> dict[DayKey, Tally]:
    """The rollup recounted from the final rows: GROUP BY touchpoint, day, score."""
    total: dict[DayKey, Tally] = {}
    for version in stored.values():
        total[row_of(version)] = total.get(row_of(version), Tally()) + tally_of(version)
    return total


@given(arrivals())
def test_the_rollup_moved_by_deltas_equals_a_recount_of_the_final_answers(
    arriving: list[tuple[int, AnswerVersion]],
) -> None:
    stored: dict[int, AnswerVersion] = {}
    rollup: dict[DayKey, Tally] = {}
    for answer, version in arriving:
        held = stored.get(answer)
        stored[answer] = kept(held, version)
        # A stale or repeated version is stored as held: its delta is nothing.
        for row, change in delta(held, stored[answer]).items():
            rollup[row] = rollup.get(row, Tally()) + change
    assert {row: tally for row, tally in rollup.items() if tally} == group_by(stored)


@given(revisions(0), revisions(0))
def test_a_repeated_or_older_revision_changes_nothing_and_a_newer_one_keeps_the_first_time(
    first: tuple[int, AnswerVersion], second: tuple[int, AnswerVersion]
) -> None:
    held, arriving = first[1], second[1]
    stored = kept(held, arriving)
    if arriving.revision <= held.revision:
        assert stored == held
        assert delta(held, stored) == {}
    else:
        assert stored.responded_at == held.responded_at
        assert (stored.score, stored.touchpoint, stored.recommended) == (
            arriving.score,
            arriving.touchpoint,
            arriving.recommended,
        )


def test_a_revision_that_replaces_the_score_moves_the_answer_and_adds_its_questions() -> None:
    held = AnswerVersion("checkout", START, score=3, revision=1)
    stored = kept(held, AnswerVersion("checkout", START, score=9, revision=2, recommended=True, csat=5))
    day = START.date()
    assert delta(held, stored) == {
        ("checkout", day, 9): Tally(answers=1, recommended_yes=1, csat_total=5, csat_answers=1),
        ("checkout", day, 3): Tally(answers=-1),
    }
    added = kept(stored, AnswerVersion("checkout", START, score=9, revision=3, recommended=False, effort=2))
    assert delta(stored, added) == {
        ("checkout", day, 9): Tally(
            recommended_yes=-1,
            recommended_no=1,
            csat_total=-5,
            csat_answers=-1,
            effort_total=2,
            effort_answers=1,
        )
    }


AWARE = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 8), timezones=st.just(UTC)
) | st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 1, 8)).map(
    lambda day: datetime(day.year, day.month, day.day, tzinfo=UTC)
)


def _in_plan(moment: datetime, since: datetime | None, until: datetime | None) -> int:
    """How many parts of the plan count ``moment``: the whole days, and each edge."""
    plan = read_plan(since, until)
    day = moment.date()
    whole = int(
        plan.whole_days
        and (plan.first_day is None or day >= plan.first_day)
        and (plan.stop_day is None or day < plan.stop_day)
    )
    return whole + sum(edge.since <= moment < edge.until for edge in plan.edges)


@given(st.none() | AWARE, st.none() | AWARE, st.lists(AWARE, max_size=20))
def test_whole_days_and_edges_count_each_answer_of_the_range_once_and_nothing_else(
    since: datetime | None, until: datetime | None, moments: list[datetime]
) -> None:
    if since is not None and until is not None and since >= until:
        since, until = until, since + timedelta(microseconds=1)
    tick = timedelta(microseconds=1)
    bounds = [moment for bound in (since, until) if bound is not None for moment in (bound - tick, bound)]
    for moment in [*moments, *bounds]:
        selected = (since is None or moment >= since) and (until is None or moment < until)
        assert _in_plan(moment, since, until) == int(selected)


@given(st.none() | AWARE, st.none() | AWARE)
def test_a_plan_reads_at_most_two_edges_each_inside_one_utc_day(
    since: datetime | None, until: datetime | None
) -> None:
    if since is not None and until is not None and since >= until:
        since, until = until, since + timedelta(microseconds=1)
    plan = read_plan(since, until)
    assert len(plan.edges) <= 2
    for edge in plan.edges:
        assert (
            edge.since
            < edge.until
            <= datetime.combine(edge.since.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        )


def test_dates_read_only_the_rollup_and_a_range_inside_a_day_only_the_answers() -> None:
    plan = read_plan(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert (plan.whole_days, plan.first_day, plan.stop_day, plan.edges) == (
        True,
        date(2026, 1, 1),
        date(2026, 2, 1),
        (),
    )
    morning, noon = datetime(2026, 1, 1, 6, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC)
    inside = read_plan(morning, noon)
    assert (inside.whole_days, inside.edges) == (False, (Edge(morning, noon),))
    assert read_plan(None, None) == ReadPlan(True, None, None, ())
    last_day = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert read_plan(last_day, None).edges == (Edge(last_day, datetime.max.replace(tzinfo=UTC)),)
    assert read_plan(None, last_day).edges == (Edge(datetime(9999, 12, 31, tzinfo=UTC), last_day),)


def test_the_recommended_panel_counts_each_score_and_group_with_its_interval() -> None:
    by_score = {
        10: Tally(answers=20, recommended_yes=5, recommended_no=5),
        3: Tally(answers=4, recommended_no=2),
    }
    rows = recommended_by_score(by_score)
    assert [row.answered for row in rows] == [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10]
    assert (rows[10].recommended, rows[10].share, rows[10].interval) == (5, 0.5, wilson_interval(5, 10))
    assert (rows[0].share, rows[0].interval) == (None, None)
    groups = recommended_by_group(by_score)
    assert list(groups) == list(GROUPS)
    assert Counter({group: row.answered for group, row in groups.items()}) == Counter(
        {NpsCategory.PROMOTER: 10, NpsCategory.PASSIVE: 0, NpsCategory.DETRACTOR: 2}
    )
    assert groups[NpsCategory.DETRACTOR].share == 0.0
