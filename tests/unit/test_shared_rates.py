"""The shared (GCRA) rates every replica reads from one row give what the in-process buckets give:
the same slots for a burst, the same verdicts for a client's requests."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.survey.domain.pacing import Pace, SharedPace
from services.survey.domain.ratelimit import PublicLimiter, PublicLimits, SharedBucket


def test_a_burst_goes_at_once_then_one_slot_per_interval_whichever_replica_asks() -> None:
    pace = SharedPace(600)  # the default: 10 a second, bursts of 100
    # Two replicas asking for 150 each at the same moment, one after the other on the row.
    tat = pace.advance(None, 0.0, 150)
    first = pace.slots(tat, 0.0, 150)
    tat = pace.advance(tat, 0.0, 150)
    second = pace.slots(tat, 0.0, 150)
    waits = first + second
    assert waits[:100] == [0.0] * 100
    assert [round(w, 6) for w in waits[100:103]] == [0.1, 0.2, 0.3]
    assert abs(waits[-1] - 20.0) < 1e-9


@given(
    st.integers(1, 6000),
    st.lists(st.tuples(st.floats(0, 30), st.integers(1, 200)), min_size=1, max_size=20),
)
def test_shared_slots_are_the_in_process_slots(per_minute: int, asks: list[tuple[float, int]]) -> None:
    """Batches of ``n`` asked at growing times get the waits one Pace would have given them."""
    shared, local = SharedPace(per_minute), Pace.per_minute(per_minute, now=0.0)
    tat: float | None = None
    clock = 0.0
    for step, (gap, n) in enumerate(asks):
        clock += gap
        tat = shared.advance(tat, clock, n)
        expected = [local.slot((step, i), clock) for i in range(n)]
        for got, want in zip(shared.slots(tat, clock, n), expected, strict=True):
            assert abs(got - want) < 1e-6


@given(st.lists(st.tuples(st.floats(0, 20), st.booleans()), min_size=1, max_size=80))
def test_shared_buckets_admit_what_the_in_process_limiter_admits(requests: list[tuple[float, bool]]) -> None:
    """A client's requests (found or missed), replayed against both: the same verdicts."""
    limits = PublicLimits()
    local = PublicLimiter(limits)
    misses, client = SharedBucket(limits.misses_per_minute), SharedBucket(limits.client_per_minute)
    miss_tat: float | None = None
    client_tat: float | None = None
    clock = 0.0
    for gap, found in requests:
        clock += gap
        served_locally = local.admit("client", None, clock) == 0
        wait = max(misses.wait(miss_tat, clock), client.wait(client_tat, clock))
        assert (wait == 0) == served_locally
        if wait == 0:
            client_tat = client.take(client_tat, clock)
            if not found:
                local.missed("client", clock)
                miss_tat = misses.charge(miss_tat, clock)
