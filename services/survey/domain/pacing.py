"""A tenant's sending rate, as slots: an invitation over the rate is given the moment it may go.

Pure: the caller passes ``now`` (seconds on a monotonic clock). Up to ``burst`` emails go at once;
after that one every ``1 / rate`` seconds. An invitation that cannot go now *reserves* the next free
slot (the bucket goes into debt for it), so a burst of 5,000 is spread over exactly the time the
rate needs, in order, and an invitation coming back at its slot goes without asking again. Waiting
is not failing: the sender puts such an invitation back for its slot without spending an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Pace:
    """One tenant's bucket. ``tokens`` may be negative: slots handed out ahead of time.

    In one process only: the sender uses :class:`SharedPace`, which replicas share and which
    gives the same slots (``tests/unit/test_shared_rates.py`` holds the two to each other)."""

    rate_per_second: float
    burst: float
    tokens: float
    updated: float
    #: Invitations holding a slot, and when it is: they were paid for when the slot was given.
    reserved: dict[object, float] = field(default_factory=dict)

    @classmethod
    def per_minute(cls, per_minute: float, now: float) -> Pace:
        if per_minute <= 0:
            raise ValueError("the sending rate must be positive")
        burst = max(1.0, per_minute / 6)
        return cls(per_minute / 60, burst, burst, now)

    def slot(self, invitation: object, now: float) -> float:
        """0: send it now. Otherwise the seconds until its slot; it keeps that slot."""
        at = self.reserved.pop(invitation, None)
        if at is not None:
            # Paid for already. Up to a second early (a poll's granularity) is close enough.
            if at - now > 1.0:
                self.reserved[invitation] = at
                return at - now
            return 0.0
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate_per_second)
        self.updated = max(self.updated, now)
        self.tokens -= 1
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate_per_second
        self.reserved[invitation] = now + wait
        if len(self.reserved) > 100_000:
            self._forget_stale(now)
        return wait

    def _forget_stale(self, now: float) -> None:
        """Slots of invitations that never came back (withdrawn, answered, claimed elsewhere)."""
        for invitation, at in list(self.reserved.items()):
            if at < now - 3600:
                del self.reserved[invitation]


# --- Shared by every replica ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedPace:
    """The same rate as :class:`Pace`, as a GCRA every replica shares through one database row.

    The row holds one number, ``tat`` (the theoretical arrival time, seconds of the Unix epoch:
    a wall clock, since replicas share no monotonic one). Giving ``n`` slots at ``now`` moves it
    to :meth:`advance`, in one statement, so concurrent replicas queue on the row and never give
    the same slot twice; :meth:`slots` then says when each of the ``n`` may go. A full bucket is
    ``tat <= now``; each slot moves ``tat`` by one interval; a slot may go once ``tat`` minus the
    burst's worth of intervals has been reached, which is :class:`Pace`'s debt, counted in time.
    """

    per_minute: float

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError("the sending rate must be positive")

    @property
    def interval(self) -> float:
        """Seconds between two slots past the burst."""
        return 60.0 / self.per_minute

    @property
    def burst(self) -> float:
        return max(1.0, self.per_minute / 6)

    @property
    def tolerance(self) -> float:
        """How far ahead of ``now`` the row may run while slots still go at once."""
        return self.burst * self.interval

    def advance(self, tat: float | None, now: float, n: int) -> float:
        """The row after giving ``n`` slots at ``now`` (``None``: no row yet, a full bucket).
        The repository's statement computes exactly this in SQL."""
        return max(tat if tat is not None else now, now) + n * self.interval

    def slots(self, tat_after: float, now: float, n: int) -> list[float]:
        """Seconds until each of the ``n`` slots just given may go (0: now), in the order given."""
        start = tat_after - n * self.interval
        return [max(0.0, start + (i + 1) * self.interval - self.tolerance - now) for i in range(n)]
