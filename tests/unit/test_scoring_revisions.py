"""Revised answers: only a newer revision counts, and it moves the answer between categories."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer, TallyChange, first_count, revise


def test_a_score_raised_from_3_to_9_turns_one_detractor_into_one_promoter() -> None:
    changes = revise(HeldAnswer("checkout", 3, 1), HeldAnswer("checkout", 9, 2))
    assert changes == {"checkout": TallyChange(promoters=1, detractors=-1)}


def test_a_newer_revision_in_the_same_category_is_stored_but_moves_nothing() -> None:
    assert revise(HeldAnswer("checkout", 3, 1), HeldAnswer("checkout", 5, 2)) == {}


def test_a_repeated_or_older_revision_is_not_applied() -> None:
    held = HeldAnswer("checkout", 9, 3)
    assert revise(held, HeldAnswer("checkout", 9, 3)) is None
    assert revise(held, HeldAnswer("checkout", 0, 2)) is None


versions = st.lists(
    st.builds(HeldAnswer, st.just("checkout"), st.integers(0, 10), st.integers(1, 6)), min_size=1, max_size=8
)


@given(versions)
def test_whatever_the_order_the_tally_counts_the_answer_once_in_its_newest_version(
    arriving: list[HeldAnswer],
) -> None:
    held = arriving[0]
    change = first_count(held)["checkout"]
    for version in arriving[1:]:
        moved = revise(held, version)
        if moved is not None:
            held = version
            change = change + moved.get("checkout", TallyChange())
    newest = max(arriving, key=lambda version: version.revision)
    assert held.revision == newest.revision
    expected = Tally().add(held.score)
    assert (change.promoters, change.passives, change.detractors) == (
        expected.promoters,
        expected.passives,
        expected.detractors,
    )
