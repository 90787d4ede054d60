"""The case rollups' pure rules: the histogram's percentile stays within 1 % of the exact one, a
range splits into whole months, whole days and edges without gap or overlap, and a case's changes moved
through the rollup leave exactly its latest version counted."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.case_days import (
    ZERO_BUCKET,
    CaseRollupChanges,
    CaseVersion,
    bucket_of,
    case_changes,
    histogram_percentile,
    plan_case_spans,
)
from services.reporting.domain.followups import percentile

pytestmark = pytest.mark.unit

durations = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=1e8, allow_nan=False)),
    min_size=1,
    max_size=300,
)


@given(durations, st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]))
def test_the_histogram_percentile_is_within_one_percent_of_the_exact_one(
    values: list[float], fraction: float
) -> None:
    histogram = Counter(bucket_of(value) for value in values)
    exact = percentile(values, fraction)
    approximate = histogram_percentile(histogram, fraction)
    assert exact is not None and approximate is not None
    assert abs(approximate - exact) <= 0.01 * exact + 1e-9


def test_zero_has_its_own_bucket_and_an_empty_histogram_no_percentile() -> None:
    assert bucket_of(0.0) == ZERO_BUCKET
    assert histogram_percentile({ZERO_BUCKET: 3}, 0.5) == 0.0
    assert histogram_percentile({}, 0.5) is None
    assert histogram_percentile({5: 0}, 0.5) is None
    with pytest.raises(ValueError):
        histogram_percentile({1: 1}, 1.5)


START = datetime(2025, 10, 1, tzinfo=UTC)
moments = st.integers(min_value=0, max_value=400 * 24).map(lambda hours: START + timedelta(hours=hours))


versions = st.builds(
    CaseVersion,
    status=st.sampled_from(["open", "contacted", "resolved"]),
    breached=st.booleans(),
    updated_at=moments,
    touchpoint=st.sampled_from([None, "checkout", "support"]),
    opened_at=st.one_of(st.none(), moments),
    assignee_name=st.sampled_from([None, "Ada", "Bo"]),
    team_name=st.sampled_from([None, "Care"]),
    seconds_to_contact=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    contact_within_sla=st.sampled_from([None, True, False]),
    seconds_to_resolution=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    root_cause=st.sampled_from([None, "price"]),
    recovery_score=st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
)


@given(st.lists(versions, min_size=1, max_size=8))
def test_the_changes_of_a_case_leave_only_its_latest_version_counted(history: list[CaseVersion]) -> None:
    tenant_id = uuid.uuid4()
    totals: dict[str, Counter[object]] = {
        "states": Counter(),
        "recoveries": Counter(),
        "durations": Counter(),
    }
    held: CaseVersion | None = None
    for version in history:
        changes = case_changes([(tenant_id, held, version)])
        for name, counter in totals.items():
            counter.update(getattr(changes, name))
        held = version
    latest = CaseRollupChanges()
    latest.add(tenant_id, history[-1], 1)
    for name, counter in totals.items():
        assert {key: n for key, n in counter.items() if n} == getattr(latest, name)


@given(st.one_of(st.none(), moments), st.one_of(st.none(), moments), st.lists(moments, max_size=40))
def test_a_range_is_its_whole_months_whole_days_and_edges_exactly_once(
    since: datetime | None, until: datetime | None, probes: list[datetime]
) -> None:
    plan = plan_case_spans(since, until)
    assert len(plan.days) <= 2 and len(plan.edges) <= 2
    for days in plan.days:
        assert days.first is not None and days.stop is not None
        assert (days.stop - days.first).days <= 62  # inside two adjacent months at most
    for moment in probes:
        in_range = (since is None or moment >= since) and (until is None or moment < until)
        day, month = moment.date(), moment.date().replace(day=1)
        months = plan.months
        in_months = months is not None and (
            (months.first is None or month >= months.first) and (months.stop is None or month < months.stop)
        )
        in_days = sum(
            (days.first is None or day >= days.first) and (days.stop is None or day < days.stop)
            for days in plan.days
        )
        in_edges = sum(
            edge.since <= moment and (edge.until is None or moment < edge.until) for edge in plan.edges
        )
        assert int(in_months) + in_days + in_edges == int(in_range)


@given(st.lists(versions, min_size=1, max_size=8))
def test_the_month_rows_move_by_the_day_rows_summed_per_month(history: list[CaseVersion]) -> None:
    tenant_id = uuid.uuid4()
    held: CaseVersion | None = None
    for version in history:
        changes = case_changes([(tenant_id, held, version)])
        states: Counter[object] = Counter()
        for (tenant, key), n in changes.states.items():
            states[(tenant, (key[0], key[1].replace(day=1), *key[2:]))] += n
        assert changes.state_months() == {key: n for key, n in states.items() if n}
        recoveries: Counter[object] = Counter()
        for (tenant, rkey), n in changes.recoveries.items():
            recoveries[(tenant, (rkey[0], rkey[1].replace(day=1), *rkey[2:]))] += n
        assert changes.recovery_months() == {key: n for key, n in recoveries.items() if n}
        durations: Counter[object] = Counter()
        for (tenant, dkey), n in changes.durations.items():
            durations[(tenant, (dkey[0], dkey[1].replace(day=1), *dkey[2:]))] += n
        assert changes.duration_months() == {key: n for key, n in durations.items() if n}
        held = version
