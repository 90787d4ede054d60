"""Revenue at risk: spend x churn probability per currency, rounded once to a whole minor unit and
shown in major units with the currency's decimals; currencies never mix."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.revenue import (
    ChurnProbability,
    Counted,
    Spend,
    at_risk_minor,
    counted,
    grouped,
    major,
    risk_of,
    risks,
)


def test_the_risk_is_the_detractors_and_passives_spend_times_their_probabilities() -> None:
    risk = risk_of(Spend("DKK", detractors=150_000, passives=40_000), ChurnProbability(0.25, 0.5))
    assert (risk.at_risk_minor, risk.at_risk, risk.detractors, risk.passives) == (
        57_500,
        Decimal("575.00"),
        Decimal("1500.00"),
        Decimal("400.00"),
    )


def test_major_units_follow_the_currencys_decimals() -> None:
    assert f"{major(123_456, 'DKK'):f}" == "1234.56"
    assert f"{major(1200, 'JPY'):f}" == "1200"
    assert f"{major(1, 'KWD'):f}" == "0.001"
    assert f"{major(0, 'EUR'):f}" == "0.00"


def test_the_defaults_count_a_third_of_detractors_and_no_passives() -> None:
    assert at_risk_minor(Spend("EUR", detractors=1000, passives=1000), ChurnProbability()) == 300


def test_rounding_is_half_to_even_on_the_exact_product() -> None:
    assert at_risk_minor(Spend("EUR", detractors=5), ChurnProbability(0.1, 0)) == 0
    assert at_risk_minor(Spend("EUR", detractors=15), ChurnProbability(0.1, 0)) == 2
    assert at_risk_minor(Spend("EUR", detractors=3), ChurnProbability(0.5, 0)) == 2


@pytest.mark.parametrize("bad", [-0.01, 1.01])
def test_a_probability_is_0_to_1(bad: float) -> None:
    with pytest.raises(ValueError):
        ChurnProbability(bad, 0)


def test_currencies_stay_apart_and_groups_are_in_order() -> None:
    rows = [
        ("b", Spend("EUR", 100)),
        ("a", Spend("DKK", 10)),
        ("a", Spend("DKK", 30, 5)),
        ("a", Spend("EUR", 1)),
    ]
    found = grouped(rows, ChurnProbability(1.0, 1.0))
    assert list(found) == ["a", "b"]
    assert [(r.currency, r.at_risk_minor) for r in found["a"]] == [("DKK", 45), ("EUR", 1)]


@given(
    st.lists(st.tuples(st.integers(0, 10**15), st.integers(0, 10**15)), max_size=10),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_the_risk_is_never_more_than_the_spend(
    amounts: list[tuple[int, int]], detractor: float, passive: float
) -> None:
    probability = ChurnProbability(detractor, passive)
    [*found] = risks([Spend("DKK", d, p) for d, p in amounts], probability)
    for risk in found:
        assert 0 <= risk.at_risk_minor <= risk.detractors_minor + risk.passives_minor


def test_the_answers_counted_are_the_detractors_and_passives_of_each_groups_distributions() -> None:
    dk = [1, 0, 0, 0, 0, 0, 2, 3, 1, 4, 5]
    se = [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 9]
    assert counted([("DK", dk), ("SE", se), ("DK", se)]) == {
        "DK": Counted(detractors=4, passives=6),
        "SE": Counted(detractors=1, passives=2),
    }
    assert counted([]) == {}
