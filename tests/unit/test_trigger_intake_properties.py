"""Intake's rest-period invariant, driven through the real handler on an in-memory trigger.

Purchases and tickets for a few customers happen at random times, arrive in a random order (some
twice, as a redelivery), and are decided in random batches by a clock that only moves forward.
Whatever the order and the batching, nobody is invited twice inside the rest period, and nobody
who may be asked is passed over.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.events import Contract, Event
from tests.support.trigger_fakes import FakeTrigger

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
#: Two years of events: some within a rest period (180 days) of each other, some far apart.
SPAN_MINUTES = 2 * 365 * 24 * 60


@dataclass(frozen=True)
class Happening:
    customer: int
    kind: str  # "purchase" or "ticket"
    minutes: int  # when it happened, after START


#: The default rest period, and times near its multiples: where an off-by-a-little rule would slip.
REST_MINUTES = 180 * 24 * 60
moments = st.one_of(
    st.integers(min_value=0, max_value=SPAN_MINUTES),
    st.builds(
        lambda periods, jitter: max(0, periods * REST_MINUTES + jitter),
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=-2 * 24 * 60, max_value=2 * 24 * 60),
    ),
)
happenings = st.lists(
    st.builds(
        Happening,
        customer=st.integers(min_value=0, max_value=2),
        kind=st.sampled_from(["purchase", "ticket"]),
        minutes=moments,
    ),
    min_size=1,
    max_size=25,
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Happening], list[list[int]], list[int]]:
    """The happenings; the order they arrive in (indices, some repeated) cut into batches; and how
    many minutes the decision clock moves on before each batch."""
    happened = draw(happenings)
    arrival = draw(st.permutations(range(len(happened))))
    redelivered = draw(st.lists(st.sampled_from(range(len(happened))), max_size=5))
    sequence = list(arrival)
    for index in redelivered:
        sequence.insert(draw(st.integers(min_value=0, max_value=len(sequence))), index)
    batches: list[list[int]] = []
    while sequence:
        size = draw(st.integers(min_value=1, max_value=len(sequence)))
        batches.append(sequence[:size])
        sequence = sequence[size:]
    lag = st.one_of(
        st.just(0), st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60 * 24 * 30)
    )
    lags = draw(st.lists(lag, min_size=len(batches), max_size=len(batches)))
    return happened, batches, lags


def _event(trigger: FakeTrigger, index: int, happening: Happening) -> Event[Contract]:
    customer = f"customer-{happening.customer}"
    at = START + timedelta(minutes=happening.minutes)
    if happening.kind == "purchase":
        return trigger.purchase(customer, f"order-{index}", at=at, event_id=f"event-{index}")
    return trigger.ticket(customer, f"ticket-{index}", at=at, event_id=f"event-{index}")


def _run(
    happened: list[Happening], batches: list[list[int]], lags: list[int]
) -> tuple[FakeTrigger, dict[str, list[datetime]]]:
    """Feed the batches; return the trigger and each customer's invitation times (when the batch
    that invited them was decided)."""
    trigger = FakeTrigger.new_tenant()
    events = [_event(trigger, index, happening) for index, happening in enumerate(happened)]
    invited_at: dict[str, list[datetime]] = {}
    now = START
    for batch, lag in zip(batches, lags, strict=True):
        # The clock never runs behind what has happened: a batch is decided after its events.
        latest = max(START + timedelta(minutes=happened[i].minutes) for i in batch)
        now = max(now, latest) + timedelta(minutes=lag)
        seen = len(trigger.requested())
        asyncio.run(trigger.intake([events[i] for i in batch], now))
        for request in trigger.requested()[seen:]:
            invited_at.setdefault(request.customer_id, []).append(now)
    return trigger, invited_at


@settings(max_examples=150, deadline=None)
@given(deliveries())
def test_nobody_is_invited_twice_inside_the_rest_period(
    delivered: tuple[list[Happening], list[list[int]], list[int]],
) -> None:
    trigger, invited_at = _run(*delivered)
    rest_period = timedelta(days=trigger.settings.default_rest_period_days)
    for customer, times in invited_at.items():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= rest_period, f"{customer} invited at {earlier} and again at {later}"


@settings(max_examples=150, deadline=None)
@given(deliveries())
def test_whoever_may_be_asked_is_invited_once_per_event(
    delivered: tuple[list[Happening], list[list[int]], list[int]],
) -> None:
    """The other side: a purchase or ticket of a customer not asked within the rest period is
    invited, and every event, however often delivered, is decided exactly once."""
    trigger, _ = _run(*delivered)
    decided = trigger.repository.decisions
    rest_period = timedelta(days=trigger.settings.default_rest_period_days)
    happened = delivered[0]
    assert sorted(decision.event_id for decision in decided) == sorted(
        f"event-{i}" for i in range(len(happened))
    )
    expected: set[str] = set()
    last_invited: dict[str, datetime] = {}
    for decision in decided:
        last = last_invited.get(decision.customer_id)
        if last is None or decision.decided_at - last >= rest_period:
            expected.add(decision.event_id)
            last_invited[decision.customer_id] = decision.decided_at
    assert {request.trigger_event_id for request in trigger.requested()} == expected
    assert len(trigger.requested()) == len(expected)
