"""The rest-period clock: nobody is asked twice inside the rest period, whatever the event order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import PURCHASE_COMPLETED, TICKET_CLOSED
from services.trigger.domain.rules import Candidate, Outcome, Reason, decide, in_rest_period, rest_period_ends

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REST = timedelta(days=180)


def purchase(event_id: str, customer: str, email: str | None = "jane@example.com") -> Candidate:
    return Candidate(event_id=event_id, customer_id=customer, event_type=PURCHASE_COMPLETED, email=email)


def test_a_customer_never_asked_is_invited() -> None:
    [decision] = decide([purchase("e1", "c1")], {}, REST, NOW)
    assert decision.outcome is Outcome.INVITED
    assert decision.touchpoint == "webshop-purchase"


def test_inside_the_rest_period_is_skipped_with_the_date_it_ends() -> None:
    last = NOW - timedelta(days=179)
    [decision] = decide([purchase("e1", "c1")], {"c1": last}, REST, NOW)
    assert decision.outcome is Outcome.SKIPPED
    assert decision.reason is Reason.REST_PERIOD
    assert decision.rest_until == last + REST


def test_the_rest_period_ends_exactly_after_its_length() -> None:
    assert in_rest_period(NOW, NOW - REST + timedelta(seconds=1), REST)
    assert not in_rest_period(NOW, NOW - REST, REST)
    assert rest_period_ends(None, REST) is None


def test_a_second_event_in_the_same_batch_is_inside_the_rest_period() -> None:
    first, second = decide([purchase("e1", "c1"), purchase("e2", "c1")], {}, REST, NOW)
    assert first.outcome is Outcome.INVITED
    assert (second.outcome, second.reason) == (Outcome.SKIPPED, Reason.REST_PERIOD)


def test_no_email_is_skipped_and_does_not_start_the_clock() -> None:
    first, second = decide([purchase("e1", "c1", email=None), purchase("e2", "c1")], {}, REST, NOW)
    assert (first.outcome, first.reason) == (Outcome.SKIPPED, Reason.NO_EMAIL)
    assert second.outcome is Outcome.INVITED


def test_a_closed_ticket_is_the_support_touchpoint() -> None:
    candidate = Candidate(event_id="t1", customer_id="c9", event_type=TICKET_CLOSED, email="a@b.example")
    assert decide([candidate], {}, REST, NOW)[0].touchpoint == "support-ticket"


def test_a_zero_rest_period_asks_every_time() -> None:
    decisions = decide([purchase("e1", "c1"), purchase("e2", "c1")], {"c1": NOW}, timedelta(0), NOW)
    assert [d.outcome for d in decisions] == [Outcome.INVITED, Outcome.INVITED]


batches = st.lists(
    st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.integers(min_value=0, max_value=400)),
    min_size=1,
    max_size=40,
)


@given(batches, st.integers(min_value=1, max_value=365))
def test_nobody_is_invited_twice_inside_the_rest_period_whatever_the_order(
    arrivals: list[tuple[str, int]], rest_days: int
) -> None:
    """Events arrive one batch at a time, on arbitrary days; the clock is carried between them."""
    rest = timedelta(days=rest_days)
    clock: dict[str, datetime] = {}
    invitations: dict[str, list[datetime]] = {}
    for index, (customer, day) in enumerate(sorted(arrivals, key=lambda a: a[1])):
        now = NOW + timedelta(days=day)
        [decision] = decide([purchase(f"e{index}", customer)], clock, rest, now)
        if decision.invited:
            clock[customer] = now
            invitations.setdefault(customer, []).append(now)
    for times in invitations.values():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= rest


@given(batches)
def test_one_batch_decides_as_the_same_events_one_at_a_time(arrivals: list[tuple[str, int]]) -> None:
    candidates = [purchase(f"e{i}", customer) for i, (customer, _) in enumerate(arrivals)]
    together = decide(candidates, {}, REST, NOW)
    clock: dict[str, datetime] = {}
    for candidate, batched in zip(candidates, together, strict=True):
        [alone] = decide([candidate], clock, REST, NOW)
        if alone.invited:
            clock[candidate.customer_id] = NOW
        assert (alone.outcome, alone.reason) == (batched.outcome, batched.reason)
