"""The sending rate as slots: a burst is spread at the rate, in order, and nobody waits twice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.survey.domain.pacing import Pace


def test_a_burst_goes_at_once_then_one_slot_per_interval() -> None:
    pace = Pace.per_minute(600, now=0.0)  # the default: 10 a second, bursts of 100
    waits = [pace.slot(n, 0.0) for n in range(300)]
    assert waits[:100] == [0.0] * 100
    assert [round(w, 6) for w in waits[100:103]] == [0.1, 0.2, 0.3]
    assert abs(waits[-1] - 20.0) < 1e-9


def test_an_invitation_back_at_its_slot_goes_without_queueing_again() -> None:
    pace = Pace.per_minute(60, now=0.0)  # 1 a second, bursts of 10
    for n in range(10):
        assert pace.slot(n, 0.0) == 0.0
    assert pace.slot("late", 0.0) == 1.0
    assert pace.slot("later", 0.0) == 2.0
    # Newcomers meanwhile queue behind; the one whose slot came goes.
    assert pace.slot("newcomer", 1.0) == 2.0
    assert pace.slot("late", 1.0) == 0.0


@given(st.integers(1, 6000), st.integers(1, 3000))
def test_slots_never_exceed_the_rate(per_minute: int, burst_size: int) -> None:
    pace = Pace.per_minute(per_minute, now=0.0)
    waits = sorted(pace.slot(n, 0.0) for n in range(burst_size))
    # However big the burst, by time t at most burst + rate * t have been given a slot.
    for index, wait in enumerate(waits):
        assert index + 1 <= pace.burst + wait * pace.rate_per_second + 1e-6
