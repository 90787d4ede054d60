"""When to fetch a thin webhook's resource again (BigCommerce sends an order id, not the order).

Pure: ``now`` is passed in. A transient failure (a timeout, a 5xx, a 429) is tried again after an
exponentially growing wait, or after the store's ``Retry-After`` when it says longer; after
:data:`MAX_ATTEMPTS` the fetch is given up with its last reason. A refusal that will not change by
itself (401, 403, 404) gives up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_ATTEMPTS = 8
FIRST_WAIT = timedelta(seconds=2)
MAX_WAIT = timedelta(minutes=10)
#: A Retry-After past this is not believed: the fetch would otherwise sit for as long as a store says.
MAX_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Retry:
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str


def after_failure(
    attempts: int, now: datetime, *, retryable: bool, reason: str, retry_after: float | None = None
) -> Retry | GiveUp:
    """What follows the ``attempts``-th failed fetch (counting it): another try, and when, or the end."""
    if not retryable:
        return GiveUp(reason)
    if attempts >= MAX_ATTEMPTS:
        return GiveUp(f"gave up after {attempts} attempts: {reason}")
    wait = min(FIRST_WAIT * 2 ** (attempts - 1), MAX_WAIT)
    if retry_after is not None and retry_after > 0:
        wait = max(wait, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return Retry(now + wait)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
