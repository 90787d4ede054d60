"""The NPS maths: categories, the score, and its confidence interval."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scoring.domain.nps import Category, Tally, classify

counts = st.integers(min_value=0, max_value=100_000)
tallies = st.builds(Tally, counts, counts, counts)
answered = tallies.filter(lambda tally: tally.responses > 0)


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, Category.DETRACTOR),
        (6, Category.DETRACTOR),
        (7, Category.PASSIVE),
        (8, Category.PASSIVE),
        (9, Category.PROMOTER),
        (10, Category.PROMOTER),
    ],
)
def test_scores_fall_in_their_category(score: int, category: Category) -> None:
    assert classify(score) is category


@pytest.mark.parametrize("score", [-1, 11, 100])
def test_a_score_outside_0_to_10_is_refused(score: int) -> None:
    with pytest.raises(ValueError, match="0 to 10"):
        classify(score)
    with pytest.raises(ValueError):
        Tally().add(score)


def test_three_promoters_one_passive_one_detractor_is_40() -> None:
    tally = Tally.of([9, 10, 9, 7, 2])
    assert (tally.promoters, tally.passives, tally.detractors, tally.responses) == (3, 1, 1, 5)
    assert tally.nps == 40


def test_all_detractors_is_minus_100() -> None:
    assert Tally.of([0, 3, 6]).nps == -100


@given(st.integers(min_value=1, max_value=10_000))
def test_any_number_of_only_detractors_is_minus_100(detractors: int) -> None:
    assert Tally(detractors=detractors).nps == -100


def test_no_answers_have_no_score_and_no_interval() -> None:
    assert Tally().responses == 0
    assert Tally().nps is None
    assert Tally().confidence_interval() is None


def test_the_interval_is_the_adjusted_wald_one() -> None:
    tally = Tally(promoters=50, passives=30, detractors=20)
    interval = tally.confidence_interval()
    assert interval is not None
    # n + 3 answers, 3/4 of them added to the promoters and 3/4 to the detractors.
    promoters, detractors = 50.75 / 103, 20.75 / 103
    centre = 100 * (promoters - detractors)
    margin = 1.959964 * 100 * math.sqrt((promoters + detractors - (promoters - detractors) ** 2) / 103)
    assert interval.level == 0.95
    assert interval.low == pytest.approx(centre - margin, abs=1e-4)
    assert interval.high == pytest.approx(centre + margin, abs=1e-4)


def test_twelve_promoters_are_no_proof_of_a_perfect_score() -> None:
    interval = Tally(promoters=12).confidence_interval()
    assert interval is not None
    assert interval.high == 100
    assert 50 < interval.low < 60


def test_the_interval_is_clipped_to_the_scale() -> None:
    interval = Tally(detractors=40).confidence_interval()
    assert interval is not None
    assert interval.low == -100
    assert interval.high < -80


@given(answered)
def test_nps_is_always_between_minus_100_and_100(tally: Tally) -> None:
    assert tally.nps is not None
    assert -100 <= tally.nps <= 100


@given(answered.filter(lambda tally: tally.responses >= 10))
def test_from_ten_answers_the_interval_contains_the_nps_and_stays_on_the_scale(tally: Tally) -> None:
    interval = tally.confidence_interval()
    assert interval is not None and tally.nps is not None
    assert -100 <= interval.low <= tally.nps <= interval.high <= 100


@given(answered)
def test_adding_a_promoter_never_lowers_the_nps(tally: Tally) -> None:
    assert tally.nps is not None
    after = tally.add(10).nps
    assert after is not None
    assert after >= tally.nps


@given(answered)
def test_adding_a_detractor_never_raises_the_nps(tally: Tally) -> None:
    assert tally.nps is not None
    after = tally.add(0).nps
    assert after is not None
    assert after <= tally.nps


@given(st.lists(st.integers(min_value=0, max_value=10)), st.lists(st.integers(min_value=0, max_value=10)))
def test_tallies_of_parts_add_up_to_the_tally_of_the_whole(first: list[int], second: list[int]) -> None:
    assert Tally.of(first) + Tally.of(second) == Tally.of(first + second)


def test_counts_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        Tally(promoters=-1)
