"""The repurchase rate's daily rollup as pure rules: what one answer adds, the windows offered,
and that the moves of any sequence of versions add up to what the last one counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.repurchase import (
    WINDOWS,
    RepurchaseTally,
    check_window,
    repurchase_tally,
)
from services.reporting.domain.rollups import AnswerVersion, DayKey, row_of
from services.reporting.handlers.purchases import counted, repurchase_changes

pytestmark = pytest.mark.unit

ANSWERED = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)


def test_an_answer_counts_once_and_in_each_window_its_repurchase_falls_within() -> None:
    assert repurchase_tally(ANSWERED, None) == RepurchaseTally(1)
    tally = repurchase_tally(ANSWERED, ANSWERED + timedelta(days=30))
    assert tally.answers == 1
    assert dict(zip(WINDOWS, tally.came_back, strict=True)) == {
        7: 0, 14: 0, 30: 1, 60: 1, 90: 1, 180: 1, 365: 1
    }  # fmt: skip
    assert not repurchase_tally(ANSWERED, None) + -repurchase_tally(ANSWERED, None)


@pytest.mark.parametrize("days", [1, 45, 364, 0, 366])
def test_only_the_windows_the_rollup_keeps_are_offered(days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        check_window(days)


def test_every_window_the_rollup_keeps_is_offered() -> None:
    assert [check_window(days) for days in WINDOWS] == list(WINDOWS)


VERSIONS = st.builds(
    AnswerVersion,
    touchpoint=st.sampled_from(["checkout", "store"]),
    responded_at=st.just(ANSWERED) | st.just(ANSWERED + timedelta(hours=2)),
    score=st.integers(0, 10),
    revision=st.integers(1, 4),
    repurchased_at=st.none() | st.timedeltas(timedelta(hours=1), timedelta(days=400)).map(ANSWERED.__add__),
)


@given(st.lists(VERSIONS, min_size=1, max_size=6))
def test_the_moves_of_any_sequence_of_versions_add_up_to_the_last_ones_count(
    versions: list[AnswerVersion],
) -> None:
    tenant = uuid.UUID(int=7)
    rollup: dict[tuple[object, DayKey], RepurchaseTally] = {}
    held: AnswerVersion | None = None
    for version in versions:
        for key, change in repurchase_changes([(tenant, held, version)]).items():
            rollup[key] = rollup.get(key, RepurchaseTally()) + change
        held = version
    assert {key: tally for key, tally in rollup.items() if tally} == {
        (tenant, row_of(versions[-1])): counted(versions[-1])
    }
