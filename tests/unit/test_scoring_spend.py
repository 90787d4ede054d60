"""Spend in cells: an answer's 12-month spend snapshot adds to its group in each of its cells, day
cells add up to their month, and a revision moves the snapshot between groups (and touchpoints)
without changing the total, whatever answers and revisions arrive."""

from __future__ import annotations

import uuid
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.domain.cells import CountedAnswer, bucket_start
from services.scoring.domain.revisions import HeldAnswer
from services.scoring.domain.segments import Segment
from services.scoring.domain.spend import (
    GroupSpend,
    SpendRollup,
    first_spend,
    revised_spend,
    snapshot_of,
)

TENANT = uuid.UUID(int=1)
TOUCHPOINTS = ("checkout", "support")

snapshots = st.lists(
    st.tuples(st.sampled_from(("DKK", "EUR", "JPY")), st.integers(min_value=0, max_value=10**12)), max_size=4
).map(snapshot_of)
answers = st.builds(
    CountedAnswer,
    st.builds(HeldAnswer, st.sampled_from(TOUCHPOINTS), st.integers(0, 10), st.just(1)),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2025, 3, 31)),
    st.lists(st.sampled_from((Segment("country", "DK"), Segment("country", "SE"))), max_size=1).map(tuple),
    snapshots,
)


def test_a_snapshot_sums_each_currency_and_leaves_out_zeros() -> None:
    assert snapshot_of([("EUR", 5), ("DKK", 100), ("EUR", 7), ("SEK", 0)]) == (("DKK", 100), ("EUR", 12))
    assert snapshot_of(None) == ()


def test_a_detractor_adds_its_spend_to_the_detractors_of_each_of_its_cells() -> None:
    counted = CountedAnswer(
        HeldAnswer("checkout", 3, 1), date(2025, 3, 5), (Segment("country", "DK"),), (("DKK", 500),)
    )
    changes = first_spend(TENANT, counted)
    assert len(changes) == 6
    assert all(spend == {"DKK": GroupSpend(detractors=500)} for spend in changes.values())
    assert first_spend(TENANT, CountedAnswer(HeldAnswer("checkout", 3, 1), date(2025, 3, 5))) == {}


def test_a_revision_from_3_to_9_moves_the_spend_from_detractors_to_promoters() -> None:
    held = CountedAnswer(HeldAnswer("checkout", 3, 1), date(2025, 3, 5), (), (("DKK", 500), ("EUR", 20)))
    moved = revised_spend(TENANT, held, HeldAnswer("checkout", 9, 2))
    assert moved is not None and len(moved) == 3
    for spend in moved.values():
        assert spend == {"DKK": GroupSpend(promoters=500, detractors=-500), "EUR": GroupSpend(20, 0, -20)}
    assert revised_spend(TENANT, held, HeldAnswer("checkout", 4, 2)) == {}
    assert revised_spend(TENANT, held, HeldAnswer("checkout", 9, 1)) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(answers, max_size=20))
def test_the_day_cells_of_a_month_add_up_to_the_month_cell(batch: list[CountedAnswer]) -> None:
    rollup = SpendRollup()
    for counted in batch:
        rollup.add(first_spend(TENANT, counted))
    months: dict[tuple[object, ...], dict[str, GroupSpend]] = {}
    for key, spend in rollup.changed().items():
        if key.bucket == "day":
            month = (key.touchpoint, key.dimension, key.value, bucket_start("month", key.start))
            into = months.setdefault(month, {})
            for currency, change in spend.items():
                into[currency] = into.get(currency, GroupSpend()) + change
    expected = {
        (key.touchpoint, key.dimension, key.value, key.start): spend
        for key, spend in rollup.changed().items()
        if key.bucket == "month"
    }
    assert {month: spend for month, spend in months.items() if spend} == expected


@settings(max_examples=60, deadline=None)
@given(answers, st.integers(0, 10), st.sampled_from(TOUCHPOINTS))
def test_moving_a_score_moves_spend_between_groups_and_keeps_the_total(
    held: CountedAnswer, score: int, touchpoint: str
) -> None:
    arriving = HeldAnswer(touchpoint, score, 2)
    cells = SpendRollup()
    cells.add(first_spend(TENANT, held))
    cells.add(revised_spend(TENANT, held, arriving) or {})
    again = CountedAnswer(arriving, held.day, held.segments, held.spend)
    assert cells.changed() == first_spend(TENANT, again)
    moved = revised_spend(TENANT, held, arriving) or {}
    for currency, _ in held.spend:
        total = sum(spend[currency].total for spend in moved.values() if currency in spend)
        assert total == 0
