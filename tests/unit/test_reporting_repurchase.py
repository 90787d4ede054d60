"""The repurchase rate's rules: which purchase is an answer's first repurchase whatever the order
and batching they arrive in, whose window has passed, and the rate by NPS group with its interval."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import (
    PURCHASE_RECORDED,
    Contract,
    Event,
    Money,
    NpsCategory,
    PurchaseRecorded,
    new_event,
    nps_category,
)
from services.reporting.domain.repurchase import (
    GROUPS,
    MATCH_WINDOW,
    GroupCount,
    ScoreCount,
    answered_by,
    came_back,
    counts_by_group,
    first_repurchase,
    is_repurchase,
    rate_of,
    rates,
)
from services.reporting.handlers.purchases import purchases_of

pytestmark = pytest.mark.unit

ANSWERED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TENANT = uuid.UUID("00000000-0000-4000-8000-000000000007")

#: Purchases from a year before the answer to well over a year after it, to the second.
offsets = st.integers(min_value=-400 * 86_400, max_value=400 * 86_400).map(lambda s: timedelta(seconds=s))
purchase_times = st.lists(offsets.map(lambda offset: ANSWERED + offset), max_size=12)


def fold(batches: list[list[datetime]]) -> datetime | None:
    """The stored first repurchase after the batches arrived one after the other."""
    known: datetime | None = None
    for batch in batches:
        known = first_repurchase(ANSWERED, known, batch)
    return known


@given(purchase_times, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=5))
def test_the_first_repurchase_is_the_same_whatever_the_order_batches_and_repeats(
    times: list[datetime], shuffler: random.Random, parts: int
) -> None:
    at_once = first_repurchase(ANSWERED, None, times)
    arrived = times + times[: len(times) // 2]  # some delivered twice
    shuffler.shuffle(arrived)
    batches = [arrived[index::parts] for index in range(parts)]
    assert fold(batches) == at_once
    # Replaying everything once more changes nothing.
    assert first_repurchase(ANSWERED, at_once, times) == at_once


@given(purchase_times)
def test_the_first_repurchase_is_the_earliest_purchase_later_than_the_answer_within_a_year(
    times: list[datetime],
) -> None:
    found = first_repurchase(ANSWERED, None, times)
    counting = [at for at in times if ANSWERED < at <= ANSWERED + MATCH_WINDOW]
    assert found == (min(counting) if counting else None)
    if found is not None:
        assert is_repurchase(ANSWERED, found)


def test_a_purchase_at_or_before_the_answer_or_over_a_year_later_is_no_repurchase() -> None:
    assert not is_repurchase(ANSWERED, ANSWERED)
    assert not is_repurchase(ANSWERED, ANSWERED - timedelta(days=1))
    assert is_repurchase(ANSWERED, ANSWERED + timedelta(microseconds=1))
    assert is_repurchase(ANSWERED, ANSWERED + timedelta(days=365))
    assert not is_repurchase(ANSWERED, ANSWERED + timedelta(days=365, seconds=1))


@given(st.integers(min_value=1, max_value=365), offsets)
def test_an_answer_came_back_within_n_days_exactly_when_its_first_repurchase_is_that_soon(
    days: int, offset: timedelta
) -> None:
    first = first_repurchase(ANSWERED, None, [ANSWERED + offset])
    assert came_back(ANSWERED, first, days) == (timedelta(0) < offset <= timedelta(days=days))


@given(st.integers(min_value=1, max_value=365))
def test_only_answers_whose_n_days_have_passed_count(days: int) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert answered_by(now, days) == now - timedelta(days=days)


@pytest.mark.parametrize("days", [0, 366, -1, True])
def test_the_window_is_1_to_365_days(days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        answered_by(ANSWERED, days)


score_counts = st.lists(
    st.tuples(st.integers(0, 10), st.integers(0, 1000), st.integers(0, 1000)).map(
        lambda row: ScoreCount(score=row[0], answers=max(row[1], row[2]), repurchased=min(row[1], row[2]))
    ),
    max_size=15,
)


@given(score_counts)
def test_scores_sum_into_their_groups_and_every_group_has_a_rate_within_its_interval(
    rows: list[ScoreCount],
) -> None:
    counts = counts_by_group(rows)
    assert sum(count.answers for count in counts.values()) == sum(row.answers for row in rows)
    for group in GROUPS:
        expected = sum(row.answers for row in rows if nps_category(row.score) is group)
        assert counts[group].answers == expected
    found = rates(counts)
    assert [rate.group for rate in found] == list(GROUPS)
    for rate in found:
        if rate.answers == 0:
            assert rate.rate is None and rate.interval is None
            continue
        assert rate.rate is not None and rate.interval is not None
        assert 0 <= rate.interval.low <= rate.rate <= rate.interval.high <= 1


def test_a_promoter_who_came_back_of_ten_has_a_wide_interval() -> None:
    rate = rate_of(NpsCategory.PROMOTER, GroupCount(answers=10, repurchased=1))
    assert rate.rate == 0.1
    assert rate.interval is not None
    assert round(rate.interval.low, 4) == 0.0179 and round(rate.interval.high, 4) == 0.4042
    with pytest.raises(ValueError):
        GroupCount(answers=1, repurchased=2)


def _recorded(order: str, customer: str, at: datetime) -> Event[Contract]:
    data = PurchaseRecorded(
        customer_id=customer, order_id=order, amount=Money(amount_minor=100, currency="DKK"), occurred_at=at
    )
    return new_event(PURCHASE_RECORDED, tenant_id=str(TENANT), data=data, subject=customer, source="/trigger")


def test_a_batch_keeps_each_order_once_the_first_seen() -> None:
    later = ANSWERED + timedelta(days=3)
    events = [_recorded("o-1", "c1", ANSWERED), _recorded("o-1", "c1", later), _recorded("o-2", "c2", later)]
    assert [(p.order_id, p.customer_id, p.occurred_at) for p in purchases_of(events)] == [
        ("o-1", "c1", ANSWERED),
        ("o-2", "c2", later),
    ]
