"""Token buckets: a per-tenant sending rate and a per-client limit on the public pages.

Pure: the caller passes ``now`` (seconds on a monotonic clock). A bucket holds up to ``burst``
tokens and refills at ``rate_per_second``; taking a token that is not there is refused with the
time to wait.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate_per_second: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate_per_second: float, burst: float, now: float) -> TokenBucket:
        return cls(rate_per_second, burst, burst, now)

    def take(self, now: float, amount: float = 1.0) -> float:
        """Take ``amount`` tokens if they are there and return 0; else take nothing and return
        how many seconds until they would be."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_second)
        self.updated = now
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate_per_second


class KeyedLimiter:
    """One bucket per key (a client address, a tenant), at most ``max_keys`` remembered: the least
    recently seen are forgotten first, so memory stays flat whatever the traffic."""

    def __init__(self, per_minute: float, *, burst: float | None = None, max_keys: int = 100_000) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate_per_second = per_minute / 60.0
        self.burst = burst if burst is not None else max(1.0, per_minute / 6)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float, amount: float = 1.0) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket.full(self.rate_per_second, self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, amount)
