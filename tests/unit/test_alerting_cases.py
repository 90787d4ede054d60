"""The alerting rules: who is a detractor and how a case may move on (the SLA clock: test_sla_policy.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.alerting.domain.cases import (
    CaseStatus,
    InvalidTransition,
    is_detractor,
    transition,
)


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
