"""An invitation's way from ``scheduled`` to ``sent`` or ``failed``, and when to try again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.common.events import FailureReason


class InvitationStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    RESPONDED = "responded"
    #: Withdrawn by the trigger before it was sent (the order was refunded, the customer left).
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base: timedelta
    cap: timedelta

    def delay(self, attempts: int) -> timedelta:
        """Exponential in the attempts made so far (1 after the first try), never above ``cap``."""
        exponent = max(attempts, 1) - 1
        # Past 2**30 the cap has long applied; stop before the float overflows.
        if exponent >= 30:
            return self.cap
        return min(self.base * (1 << exponent), self.cap)


@dataclass(frozen=True, slots=True)
class Sent:
    at: datetime


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Held back by the tenant's sending rate until ``at``: not a try, so no attempt is spent."""

    at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    #: Why, from the closed set in ``libs.common.events.FailureReason``: counted and reported.
    reason: FailureReason = "refused"

    @property
    def hard_bounce(self) -> bool:
        """The receiving server refused the address itself: the address is dead."""
        return self.reason == "recipient_refused"


Outcome = Sent | Retry | Wait | Failed


def before_sending(
    *, attempts: int, expires_at: datetime, now: datetime, policy: RetryPolicy
) -> Failed | None:
    """Whether a claimed invitation should be given up without another try.

    ``attempts`` counts the claim just made. Past the maximum it can only mean earlier claims ended
    without an outcome (the process died mid-send), so stop rather than loop on it forever.
    """
    if now >= expires_at:
        return Failed("expired before it could be sent", "expired")
    if attempts > policy.max_attempts:
        return Failed(f"no outcome recorded after {policy.max_attempts} attempts", "attempts_exhausted")
    return None


def after_failure(
    *,
    attempts: int,
    permanent: bool,
    error: str,
    now: datetime,
    policy: RetryPolicy,
    recipient_refused: bool = False,
) -> Retry | Failed:
    error = scrub(error)
    if permanent:
        return Failed(error, "recipient_refused" if recipient_refused else "refused")
    if attempts >= policy.max_attempts:
        return Failed(f"gave up after {attempts} attempts: {error}", "attempts_exhausted")
    return Retry(now + policy.delay(attempts), error)


_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
MAX_ERROR_LENGTH = 500


def scrub(error: str) -> str:
    """Servers often quote the recipient in a refusal; the stored error must not hold an address."""
    return _ADDRESS.sub("<address>", error)[:MAX_ERROR_LENGTH]
