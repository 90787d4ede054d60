"""The segments of an answer, from its survey context, and the bound of 200 values per dimension."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import SurveyContext
from services.scoring.domain.segments import (
    MAX_VALUES,
    OTHER,
    KnownValues,
    Segment,
    declared_problem,
    segments_of,
)

TENANT = uuid.UUID(int=7)


def test_the_built_in_dimensions_come_from_the_context_and_its_attributes() -> None:
    context = SurveyContext(
        locale="da-DK",
        account_id="acme",
        attributes={
            "country": " DK ",
            "channel": "web",
            "store": "Copenhagen",
            "plan": "pro",
            "tier": "gold",
        },
    )
    assert segments_of(context) == (
        Segment("account", "acme"),
        Segment("channel", "web"),
        Segment("country", "DK"),
        Segment("language", "da"),
        Segment("plan", "pro"),
        Segment("store", "Copenhagen"),
    )


def test_a_declared_attribute_counts_and_an_undeclared_one_is_ignored() -> None:
    context = SurveyContext(attributes={"tier": "gold", "region": "north"})
    assert segments_of(context, ["tier"]) == (Segment("tier", "gold"),)
    assert segments_of(None, ["tier"]) == ()


def test_an_answer_counts_once_in_each_of_at_most_five_categories() -> None:
    context = SurveyContext(attributes={"categories": "shoes, Bags,shoes,,hats,belts,socks,ties"})
    assert [s.value for s in segments_of(context)] == ["Bags", "belts", "hats", "shoes", "socks"]
    assert segments_of(SurveyContext(attributes={"category": "toys"})) == (Segment("category", "toys"),)


def test_a_blank_value_is_no_value_and_values_keep_their_case() -> None:
    context = SurveyContext(locale="EN_gb", attributes={"country": "  ", "store": "Aarhus"})
    assert segments_of(context) == (Segment("language", "en"), Segment("store", "Aarhus"))
    assert segments_of(SurveyContext(attributes={"store": "aarhus"})) != segments_of(context)


def test_declared_dimensions_are_checked() -> None:
    assert declared_problem(["tier", "region"]) is None
    assert declared_problem(["country"]) == "'country' is built in already"
    assert declared_problem(["Tier"]) is not None
    assert declared_problem(["a", "b", "c", "d", "e", "f"]) == "at most 5 dimensions, not 6"
    assert declared_problem(["tier", "tier"]) == "each dimension once"


def test_the_201st_value_counts_as_other_and_known_values_stay() -> None:
    known = KnownValues({(TENANT, "store"): {f"s{i}" for i in range(MAX_VALUES - 1)}})
    assert known.bounded(TENANT, [Segment("store", "new")]) == (Segment("store", "new"),)
    assert known.bounded(TENANT, [Segment("store", "newer")]) == (Segment("store", OTHER),)
    assert known.bounded(TENANT, [Segment("store", "s3"), Segment("store", "new")]) == (
        Segment("store", "new"),
        Segment("store", "s3"),
    )
    assert known.new_values() == [(TENANT, Segment("store", "new"))]
    assert KnownValues({}).bounded(TENANT, [Segment("store", "x")]) == (Segment("store", "x"),)


@given(
    st.lists(st.tuples(st.sampled_from(["store", "plan"]), st.integers(0, 400)), max_size=600),
    st.integers(0, MAX_VALUES),
)
def test_no_dimension_ever_holds_more_than_the_bound_and_a_value_keeps_its_cell(
    arriving: list[tuple[str, int]], already: int
) -> None:
    known = KnownValues({(TENANT, "store"): {str(i) for i in range(already)}})
    first: dict[Segment, Segment] = {}
    for dimension, value in arriving:
        segment = Segment(dimension, str(value))
        [counted] = known.bounded(TENANT, [segment])
        assert first.setdefault(segment, counted) == counted
        assert counted in (segment, Segment(dimension, OTHER))
    for dimension in ("store", "plan"):
        held = (already if dimension == "store" else 0) + sum(
            1 for _, segment in known.new_values() if segment.dimension == dimension
        )
        assert held <= MAX_VALUES
        seen = {value for d, value in arriving if d == dimension}
        if dimension == "plan":
            assert held == min(len(seen), MAX_VALUES)


def test_control_characters_are_left_out_of_a_value() -> None:
    assert segments_of(SurveyContext(account_id="acme\x00\x07 ")) == (Segment("account", "acme"),)
    assert segments_of(SurveyContext(account_id="\x00")) == ()
