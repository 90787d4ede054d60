"""Cells: the buckets an answer counts in, and that day, week and month cells always add up, to
each other and to the all-time tally, whatever answers and revisions arrive."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.domain import revisions
from services.scoring.domain.cells import (
    BUCKETS,
    ZERO,
    Bins,
    Bucket,
    CellKey,
    CountedAnswer,
    Rollup,
    all_time,
    bucket_end,
    bucket_start,
    cells_of,
    first_count,
    revision,
    rolling_window,
    utc_day,
)
from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer
from services.scoring.domain.segments import Segment

TENANT = uuid.UUID(int=1)


def test_buckets_are_the_utc_day_the_iso_week_from_monday_and_the_calendar_month() -> None:
    sunday = date(2025, 3, 9)
    assert bucket_start("day", sunday) == sunday
    assert bucket_start("week", sunday) == date(2025, 3, 3)
    assert bucket_start("month", sunday) == date(2025, 3, 1)
    assert bucket_end("week", date(2025, 3, 3)) == date(2025, 3, 10)
    assert bucket_end("month", date(2025, 12, 1)) == date(2026, 1, 1)
    assert bucket_end("day", date(2024, 2, 28)) == date(2024, 2, 29)
    assert utc_day(datetime(2025, 3, 10, 0, 30, tzinfo=UTC)) == date(2025, 3, 10)
    assert utc_day(datetime.fromisoformat("2025-03-10T00:30:00+01:00")) == date(2025, 3, 9)
    assert rolling_window(date(2025, 3, 10), 7) == (date(2025, 3, 4), date(2025, 3, 11))


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)), st.sampled_from(BUCKETS))
def test_every_day_lies_in_exactly_one_bucket_of_each_kind(day: date, bucket: Bucket) -> None:
    start = bucket_start(bucket, day)
    assert start <= day < bucket_end(bucket, start)
    assert bucket_start(bucket, bucket_end(bucket, start)) == bucket_end(bucket, start)


def test_an_answer_counts_in_its_segments_and_everybody_in_three_buckets() -> None:
    counted = CountedAnswer(HeldAnswer("checkout", 9, 1), date(2025, 3, 5), (Segment("country", "DK"),))
    changes = first_count(TENANT, counted)
    assert len(changes) == 6
    assert {(key.dimension, key.value, key.bucket, key.start) for key in changes} == {
        ("", "", "day", date(2025, 3, 5)),
        ("", "", "week", date(2025, 3, 3)),
        ("", "", "month", date(2025, 3, 1)),
        ("country", "DK", "day", date(2025, 3, 5)),
        ("country", "DK", "week", date(2025, 3, 3)),
        ("country", "DK", "month", date(2025, 3, 1)),
    }
    assert set(changes.values()) == {Bins.one(9)}


def test_a_revision_moves_the_answer_inside_its_first_cells_and_an_older_one_changes_nothing() -> None:
    held = CountedAnswer(HeldAnswer("checkout", 3, 2), date(2025, 3, 5), (Segment("store", "A"),))
    moved = revision(TENANT, held, HeldAnswer("checkout", 10, 3))
    assert moved is not None and len(moved) == 6
    assert set(moved.values()) == {Bins.one(3, -1) + Bins.one(10)}
    assert revision(TENANT, held, HeldAnswer("checkout", 10, 2)) is None
    assert revision(TENANT, held, HeldAnswer("checkout", 3, 4)) == {}
    assert all_time(moved) == {"checkout": Bins.one(3, -1) + Bins.one(10)}


segments = st.lists(
    st.builds(Segment, st.sampled_from(["country", "store"]), st.sampled_from(["DK", "SE", "A"])), max_size=2
).map(lambda found: tuple(sorted(set(found))))
answers = st.tuples(
    st.integers(0, 5),  # which answer
    st.integers(1, 4),  # its revision
    st.integers(0, 10),  # its score
    st.dates(min_value=date(2024, 12, 20), max_value=date(2025, 2, 10)),
    segments,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(answers, min_size=1, max_size=30))
def test_week_and_month_cells_are_the_sum_of_their_days_and_the_days_the_all_time_tally(
    arrivals: list[tuple[int, int, int, date, tuple[Segment, ...]]],
) -> None:
    held: dict[int, CountedAnswer] = {}
    tallies: dict[str, revisions.TallyChange] = {}
    cells: Rollup[CellKey] = Rollup()
    for response, revision_number, score, day, found in arrivals:
        # The touchpoint of an answer never changes; the date and segments of later ones are ignored.
        answer = HeldAnswer(["checkout", "support"][response % 2], score, revision_number)
        if response not in held:
            held[response] = CountedAnswer(answer, day, found)
            cells.add(first_count(TENANT, held[response]))
            tally_changes = revisions.first_count(answer)
        else:
            moved = revision(TENANT, held[response], answer)
            tally_changes = revisions.revise(held[response].answer, answer) or {}
            if moved is not None:
                cells.add(moved)
                held[response] = CountedAnswer(answer, held[response].day, held[response].segments)
        for name, change in tally_changes.items():
            tallies[name] = tallies.get(name, revisions.TallyChange()) + change
        for cell in cells.changes.values():
            assert min(cell.bins.counts) >= 0
    state = {key: change.bins for key, change in cells.changes.items()}
    for key, bins in state.items():
        if key.bucket != "day":
            days = [
                other
                for other_key, other in state.items()
                if (other_key.bucket, other_key.touchpoint, other_key.dimension, other_key.value)
                == ("day", key.touchpoint, key.dimension, key.value)
                and key.start <= other_key.start < key.end
            ]
            assert sum(days, ZERO) == bins
    for name in ("checkout", "support"):
        days = [
            bins
            for key, bins in state.items()
            if key.touchpoint == name and key.bucket == "day" and not key.dimension
        ]
        expected = tallies.get(name, revisions.TallyChange())
        assert sum(days, ZERO).tally() == Tally(expected.promoters, expected.passives, expected.detractors)
        assert (
            sum(days, ZERO).counts
            == Bins(
                tuple(
                    sum(1 for a in held.values() if a.answer.touchpoint == name and a.answer.score == s)
                    for s in range(11)
                )
            ).counts
        )


def test_cells_of_names_everybody_once_even_without_segments() -> None:
    assert [key.bucket for key in cells_of(TENANT, "checkout", date(2025, 1, 1), ())] == [
        "day",
        "week",
        "month",
    ]
