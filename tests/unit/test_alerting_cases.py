"""The alerting rules: who is a detractor, the SLA clock, and how a case may move on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.alerting.domain.cases import (
    CaseStatus,
    InvalidTransition,
    due_at,
    is_breached,
    is_detractor,
    transition,
)

SLA = timedelta(hours=24)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))
slas = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=30))


@pytest.mark.parametrize("score", range(7))
def test_scores_zero_to_six_are_detractors(score: int) -> None:
    assert is_detractor(score)


@pytest.mark.parametrize("score", [7, 8, 9, 10])
def test_passives_and_promoters_are_not_detractors(score: int) -> None:
    assert not is_detractor(score)


@pytest.mark.parametrize("score", [-1, 11])
def test_a_score_outside_the_nps_scale_is_refused(score: int) -> None:
    with pytest.raises(ValueError, match="0-10"):
        is_detractor(score)


def test_a_case_is_due_24_hours_after_the_answer() -> None:
    answered = datetime(2024, 3, 9, 22, 30, tzinfo=UTC)
    assert due_at(answered, SLA) == datetime(2024, 3, 10, 22, 30, tzinfo=UTC)


@given(answered=moments, sla=slas)
def test_the_due_time_is_always_exactly_one_sla_after_the_answer(answered: datetime, sla: timedelta) -> None:
    assert due_at(answered, sla) - answered == sla


@given(answered=moments, sla=slas, wait=offsets)
def test_an_open_case_is_breached_exactly_when_its_due_time_has_passed(
    answered: datetime, sla: timedelta, wait: timedelta
) -> None:
    now = answered + wait
    assert is_breached(CaseStatus.OPEN, due_at(answered, sla), now) == (wait > sla)


@given(answered=moments, sla=slas)
def test_the_due_instant_itself_is_still_in_time(answered: datetime, sla: timedelta) -> None:
    due = due_at(answered, sla)
    assert not is_breached(CaseStatus.OPEN, due, due)
    assert is_breached(CaseStatus.OPEN, due, due + timedelta(microseconds=1))


@given(answered=moments, sla=slas, contact_fraction=st.floats(0, 1), later=offsets)
def test_a_case_contacted_before_its_due_time_never_breaches(
    answered: datetime, sla: timedelta, contact_fraction: float, later: timedelta
) -> None:
    due = due_at(answered, sla)
    contacted_at = answered + sla * contact_fraction
    status = transition(CaseStatus.OPEN, CaseStatus.CONTACTED)
    assert contacted_at <= due
    # Whenever the SLA check runs after the contact, and whatever happens next, no breach.
    for now in (contacted_at, due, due + later):
        assert not is_breached(status, due, now)
        assert not is_breached(transition(status, CaseStatus.RESOLVED), due, now)


@given(sla=slas, now=moments)
def test_a_case_resolved_straight_away_never_breaches(sla: timedelta, now: datetime) -> None:
    status = transition(CaseStatus.OPEN, CaseStatus.RESOLVED)
    assert not is_breached(status, now - sla * 2, now)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (CaseStatus.OPEN, CaseStatus.CONTACTED),
        (CaseStatus.OPEN, CaseStatus.RESOLVED),
        (CaseStatus.CONTACTED, CaseStatus.RESOLVED),
        (CaseStatus.RESOLVED, CaseStatus.OPEN),
    ],
)
def test_allowed_transitions(current: CaseStatus, target: CaseStatus) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (CaseStatus.RESOLVED, CaseStatus.CONTACTED),
        (CaseStatus.RESOLVED, CaseStatus.RESOLVED),
        (CaseStatus.CONTACTED, CaseStatus.OPEN),
        (CaseStatus.CONTACTED, CaseStatus.CONTACTED),
        (CaseStatus.OPEN, CaseStatus.OPEN),
    ],
)
def test_forbidden_transitions_name_the_problem(current: CaseStatus, target: CaseStatus) -> None:
    with pytest.raises(InvalidTransition) as raised:
        transition(current, target)
    assert f"from {current.value} to {target.value}" in str(raised.value)


@given(path=st.lists(st.sampled_from(list(CaseStatus)), max_size=8))
def test_cases_only_move_forward_except_that_a_resolved_case_may_be_reopened(
    path: list[CaseStatus],
) -> None:
    order = [CaseStatus.OPEN, CaseStatus.CONTACTED, CaseStatus.RESOLVED]
    status = CaseStatus.OPEN
    for target in path:
        try:
            after = transition(status, target)
        except InvalidTransition:
            continue
        reopened = status is CaseStatus.RESOLVED and after is CaseStatus.OPEN
        assert reopened or order.index(after) > order.index(status)
        status = after
