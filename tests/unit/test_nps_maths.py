"""The interval every page and API shows, and the comparison of two periods (libs/common/nps.py)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.nps import MIN_RESPONSES, Counts, change, interval

counts = st.integers(min_value=0, max_value=50_000)
groups = st.builds(Counts, counts, counts, counts)
shown = groups.filter(lambda group: group.responses >= MIN_RESPONSES)


def _coverage(true_shares: tuple[float, float, float], n: int, trials: int = 2000) -> float:
    """How often the interval of a random sample of n answers holds the true score."""
    rng = random.Random(11)
    true_nps = 100 * (true_shares[0] - true_shares[2])
    held = 0
    for _ in range(trials):
        drawn = rng.choices(range(3), weights=true_shares, k=n)
        sample = Counts(drawn.count(0), drawn.count(1), drawn.count(2))
        bounds = interval(sample)
        assert bounds is not None
        held += bounds.low <= true_nps <= bounds.high
    return held / trials


@pytest.mark.parametrize("n", [10, 20, 50])
@pytest.mark.parametrize("true_shares", [(0.5, 0.3, 0.2), (0.85, 0.1, 0.05), (0.2, 0.3, 0.5)])
def test_the_interval_stays_honest_for_small_samples(true_shares: tuple[float, float, float], n: int) -> None:
    # A 95 % interval should hold the true score about 95 times in 100; the plain Wald interval
    # falls well short for small n and skewed shares (80 % at n=10 with 85 % promoters, here).
    assert _coverage(true_shares, n) >= 0.92


def test_too_few_answers_are_marked() -> None:
    assert Counts(promoters=MIN_RESPONSES - 1).too_few
    assert not Counts(promoters=MIN_RESPONSES).too_few


@given(shown)
def test_the_interval_holds_the_score_and_stays_on_the_scale(group: Counts) -> None:
    bounds = interval(group)
    assert bounds is not None and group.nps is not None
    assert -100 <= bounds.low <= group.nps <= bounds.high <= 100


@given(groups, groups)
def test_a_change_reads_the_same_both_ways(before: Counts, after: Counts) -> None:
    forward, backward = change(before, after), change(after, before)
    assert forward.significant == backward.significant
    if forward.difference is not None:
        assert backward.difference == pytest.approx(-forward.difference)


@given(shown)
def test_a_period_compared_with_itself_has_not_moved(group: Counts) -> None:
    same = change(group, group)
    assert same.difference == 0
    assert not same.significant
    assert same.interval is not None and same.interval.low < 0 < same.interval.high


def test_a_real_move_is_significant_and_noise_is_not() -> None:
    before = Counts(promoters=400, passives=300, detractors=300)  # NPS 10
    assert change(before, Counts(promoters=500, passives=300, detractors=200)).significant  # NPS 30
    small = change(Counts(4, 3, 3), Counts(5, 3, 2))
    assert small.difference == pytest.approx(20)
    assert not small.significant


def test_a_period_without_answers_cannot_be_compared() -> None:
    moved = change(Counts(), Counts(promoters=20))
    assert moved.difference is None and moved.interval is None
    assert not moved.significant and moved.too_few
