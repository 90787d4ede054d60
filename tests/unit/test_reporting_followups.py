"""The "did following up work?" figures: percentiles, Wilson intervals, the groups, and how case
snapshots with and without the follow-up fields merge."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.api.summary import _TEMPLATES, FollowupReportView, _followup_csv, _followup_view
from services.reporting.domain import display
from services.reporting.domain.cases import LATEST_KNOWN, CaseFacts, merge
from services.reporting.domain.followups import (
    LATER,
    NEVER_CONTACTED,
    WITHIN_24_H,
    BreakdownCount,
    CaseTotals,
    Interval,
    RecoveryCount,
    contact_speed,
    followup_report,
    percentile,
    recovered,
    wilson_interval,
)
from services.reporting.domain.summary import Summary

pytestmark = pytest.mark.unit


# --- Percentiles ----------------------------------------------------------------------------------


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    # Position 0.9 * 9 = 8.1 of 1..10: a tenth of the way from 9 to 10.
    assert percentile([float(n) for n in range(10, 0, -1)], 0.9) == pytest.approx(9.1)
    assert percentile([7.0], 0.5) == 7.0
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([3.0, 1.0], 0.0) == 1.0
    assert percentile([3.0, 1.0], 1.0) == 3.0


def test_no_values_have_no_percentile_and_a_fraction_is_0_to_1() -> None:
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


@given(st.lists(st.floats(min_value=0, max_value=1e7), min_size=1), st.floats(min_value=0, max_value=1))
def test_a_percentile_lies_within_the_values_and_grows_with_the_fraction(
    values: list[float], fraction: float
) -> None:
    value = percentile(values, fraction)
    assert value is not None
    assert min(values) <= value <= max(values)
    higher = percentile(values, min(1.0, fraction + 0.1))
    assert higher is not None and higher >= value


# --- Wilson intervals -----------------------------------------------------------------------------


def test_the_wilson_interval_matches_published_values() -> None:
    # 5 of 6 and 1 of 4, 95 %: 0.4365-0.9699 and 0.0456-0.6994.
    five_of_six = wilson_interval(5, 6)
    assert five_of_six is not None
    assert (round(five_of_six.low, 4), round(five_of_six.high, 4)) == (0.4365, 0.9699)
    one_of_four = wilson_interval(1, 4)
    assert one_of_four is not None
    assert (round(one_of_four.low, 4), round(one_of_four.high, 4)) == (0.0456, 0.6994)


def test_the_wilson_interval_stays_within_0_and_1_at_the_edges_and_needs_cases() -> None:
    none_of_three = wilson_interval(0, 3)
    all_of_three = wilson_interval(3, 3)
    assert none_of_three is not None and none_of_three.low == 0 and none_of_three.high < 1
    assert all_of_three is not None and all_of_three.high == 1 and all_of_three.low > 0
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


@given(st.integers(min_value=1, max_value=10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_wilson_interval_holds_the_observed_share(successes_of: tuple[int, int]) -> None:
    successes, n = successes_of
    interval = wilson_interval(successes, n)
    assert interval is not None
    assert 0 <= interval.low <= successes / n <= interval.high <= 1


# --- Groups ---------------------------------------------------------------------------------------


def test_contact_speed_and_recovery_follow_the_stated_thresholds() -> None:
    assert contact_speed(0) == WITHIN_24_H
    assert contact_speed(86_400) == WITHIN_24_H
    assert contact_speed(86_400.5) == LATER
    assert contact_speed(None) == NEVER_CONTACTED
    assert [recovered(score) for score in (0, 6, 7, 8, 9, 10)] == [False, False, True, True, True, True]


def scored(dimension: str, group: str | None, score: int, cases: int) -> RecoveryCount:
    return RecoveryCount(dimension="contact_speed" if dimension == "speed" else "root_cause",
                         group=group, recovery_score=score, cases=cases)  # fmt: skip


#: 6 customers reached within a day, 5 of them won back; 4 reached later, 1 won back.
RECOVERY = [
    scored("speed", WITHIN_24_H, 9, 3),
    scored("speed", WITHIN_24_H, 7, 2),
    scored("speed", WITHIN_24_H, 4, 1),
    scored("speed", LATER, 8, 1),
    scored("speed", LATER, 2, 3),
    scored("cause", "delivery", 9, 3),
    scored("cause", "delivery", 2, 3),
    scored("cause", None, 7, 3),
    scored("cause", "billing", 4, 1),
]


def test_recovery_is_split_by_contact_speed_and_root_cause_with_n() -> None:
    report = followup_report(CaseTotals(), [], RECOVERY)
    speeds = {row.group: (row.n, row.recovered, row.rate) for row in report.recovery_by_contact_speed}
    assert speeds == {
        WITHIN_24_H: (6, 5, pytest.approx(5 / 6)),
        LATER: (4, 1, 0.25),
        NEVER_CONTACTED: (0, 0, None),
    }
    assert [row.group for row in report.recovery_by_contact_speed] == [WITHIN_24_H, LATER, NEVER_CONTACTED]
    causes = [(row.group, row.n, row.recovered) for row in report.recovery_by_root_cause]
    assert causes == [("delivery", 6, 3), ("Not recorded", 3, 3), ("billing", 1, 0)]
    overall = report.recovery_overall
    assert (overall.n, overall.recovered, overall.rate) == (10, 6, 0.6)
    assert report.recovery_by_contact_speed[2].interval is None


def test_breaches_name_the_unowned_and_take_their_share_of_all_breaches() -> None:
    breakdown = [
        BreakdownCount("owner", "Ana", cases=6, breached=1),
        BreakdownCount("owner", None, cases=4, breached=3),
        BreakdownCount("team", None, cases=10, breached=4),
        BreakdownCount("touchpoint", "checkout", cases=7, breached=2),
        BreakdownCount("touchpoint", "delivery", cases=2, breached=2),
        BreakdownCount("touchpoint", None, cases=1, breached=0),
    ]
    report = followup_report(CaseTotals(cases=10, breached=4), breakdown, [])
    owners = [(row.name, row.cases, row.breached, row.share_of_breaches) for row in report.breaches_by_owner]
    assert owners == [("Unassigned", 4, 3, 0.75), ("Ana", 6, 1, 0.25)]
    assert [row.name for row in report.breaches_by_team] == ["No team"]
    # Most breaches first, ties by name.
    assert [row.name for row in report.breaches_by_touchpoint] == ["checkout", "delivery", "Unknown"]
    assert report.breaches_by_touchpoint[1].breach_rate == 1.0


def test_times_are_reported_in_hours_and_sla_over_known_outcomes() -> None:
    totals = CaseTotals(
        cases=12,
        contacted=10,
        contact_p50_seconds=5_400,
        contact_p90_seconds=172_800,
        within_sla=6,
        sla_known=8,
        breached=3,
        resolved=10,
        resolution_p50_seconds=36_000,
    )
    report = followup_report(totals, [], [])
    assert report.contact_hours == (1.5, 48.0)
    assert report.resolution_hours == (10.0, None)
    assert report.within_sla_share == 0.75


def test_no_cases_give_no_figures_rather_than_zeros() -> None:
    report = followup_report(CaseTotals(), [], [])
    assert report.contact_hours == (None, None)
    assert report.resolution_hours == (None, None)
    assert report.within_sla_share is None
    assert report.breaches_by_owner == report.breaches_by_team == report.breaches_by_touchpoint == []
    assert report.recovery_by_root_cause == []
    assert {row.n for row in report.recovery_by_contact_speed} == {0}
    assert report.recovery_overall.rate is None


# --- What machines and people read ----------------------------------------------------------------


def test_the_csv_has_a_header_and_a_row_per_group() -> None:
    breakdown = [BreakdownCount("owner", "Ana, Care", cases=2, breached=1)]
    view = _followup_view(followup_report(CaseTotals(cases=2, breached=1), breakdown, RECOVERY[:1]))
    lines = _followup_csv(view).split("\r\n")
    assert lines[0] == (
        "breakdown,group,cases,breached,share_of_breaches,breach_rate,"
        "recovery_n,recovered,recovery_rate,recovery_ci_low,recovery_ci_high"
    )
    assert lines[1] == 'breaches_by_owner,"Ana, Care",2,1,1.0,0.5,,,,,'
    assert lines[2] == "recovery_by_contact_speed,within 24 h,,,,,3,3,1.0,0.4385,1.0"
    assert lines[3] == "recovery_by_contact_speed,later,,,,,0,0,,,"
    assert FollowupReportView.model_validate(view.model_dump()) == view


def test_a_name_a_spreadsheet_would_run_as_a_formula_is_quoted_in_the_csv() -> None:
    breakdown = [BreakdownCount("owner", '=HYPERLINK("https://evil.example","x")', cases=1, breached=1)]
    view = _followup_view(followup_report(CaseTotals(cases=1, breached=1), breakdown, RECOVERY[:1]))
    row = next(csv.reader(io.StringIO(_followup_csv(view).split("\r\n")[1])))
    assert row[1] == '\'=HYPERLINK("https://evil.example","x")'


def test_the_follow_up_section_has_captioned_tables_and_escapes_names() -> None:
    hostile = "<b>Ana</b>"
    report = followup_report(
        CaseTotals(cases=1, breached=1), [BreakdownCount("owner", hostile, cases=1, breached=1)], RECOVERY
    )
    page = _TEMPLATES.get_template("summary.html").render(
        fmt=display, scope="All touchpoints.", overall=Summary(), by_touchpoint=[], followups=report
    )
    section = page[page.index('<section id="followup"') :]
    assert '<h2 id="followup-heading">Follow-up</h2>' in section
    assert hostile not in section and "&lt;b&gt;Ana&lt;/b&gt;" in section
    assert section.count("<caption>") == 6
    assert '<th scope="row">within 24 h</th>' in section
    assert "43.6 to 97.0 %" in section
    assert display.percent_range(Interval(0.25, 0.5)) == "25.0 to 50.0 %"
    assert display.hours(None) == "—"


# --- Merging snapshots with and without the follow-up fields ------------------------------------

OPENED_AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def old_style(minutes: int, status: str = "contacted") -> CaseFacts:
    """An update from an emitter that sends status and breach only."""
    return CaseFacts(status=status, breached=False, updated_at=OPENED_AT + timedelta(minutes=minutes))


def snapshot(minutes: int, assignee: str, recovery_score: int | None) -> CaseFacts:
    return CaseFacts(
        status="resolved",
        breached=True,
        updated_at=OPENED_AT + timedelta(minutes=minutes),
        assignee_name=assignee,
        team_name="Care",
        priority="urgent",
        contacted_at=OPENED_AT + timedelta(minutes=30),
        seconds_to_contact=1800.0,
        contact_within_sla=True,
        resolved_at=OPENED_AT + timedelta(minutes=minutes),
        seconds_to_resolution=60.0 * minutes,
        root_cause="delivery",
        recovery_score=recovery_score,
    )


def test_a_snapshot_without_the_fields_does_not_wipe_them() -> None:
    full = snapshot(100, "Ana", 9)
    later_old = old_style(200, status="resolved")
    merged = merge(full, later_old)
    assert merged.updated_at == later_old.updated_at
    assert all(getattr(merged, name) == getattr(full, name) for name in LATEST_KNOWN)
    assert merge(later_old, full) == merged


def test_the_newest_snapshot_that_carries_a_field_wins() -> None:
    assert merge(snapshot(100, "Ana", None), snapshot(200, "Bo", 9)).assignee_name == "Bo"
    assert merge(snapshot(200, "Bo", None), snapshot(100, "Ana", 9)).assignee_name == "Bo"
    # The newer snapshot has no recovery score yet: the older one's stays.
    assert merge(snapshot(200, "Bo", None), snapshot(100, "Ana", 9)).recovery_score == 9


@given(
    st.lists(st.integers(min_value=0, max_value=999), max_size=4, unique=True),
    st.integers(min_value=0, max_value=3),
    st.lists(st.tuples(st.sampled_from(["Ana", "Bo"]), st.integers(0, 10)), max_size=4),
    st.randoms(),
)
def test_any_arrival_order_gives_the_same_case_once_the_emitter_sends_the_fields(
    old_minutes: list[int], unanswered: int, answered: list[tuple[str, int]], shuffler: random.Random
) -> None:
    # The older emitter's updates all come before the newer emitter's, as in a deployment; the
    # recovery score is missing until the customer answers, then known.
    snapshots: list[tuple[str, int | None]] = [("Ana", None)] * unanswered + list(answered)
    facts = [old_style(minutes) for minutes in old_minutes]
    facts += [snapshot(1000 + 10 * i, name, score) for i, (name, score) in enumerate(snapshots)]
    if not facts:
        return
    shuffled = list(facts)
    shuffler.shuffle(shuffled)

    def fold(order: list[CaseFacts]) -> CaseFacts:
        case = order[0]
        for fact in order[1:]:
            case = merge(case, fact)
        return case

    assert fold(shuffled) == fold(facts)
