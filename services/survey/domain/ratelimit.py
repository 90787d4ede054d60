"""Token buckets: a per-tenant sending rate, and the limits of the public survey pages.

Pure: the caller passes ``now`` (seconds on a monotonic clock). A bucket holds up to ``burst``
tokens and refills at ``rate_per_second``; taking a token that is not there is refused with the
time to wait.
"""

from __future__ import annotations

import ipaddress
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

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_second)
        self.updated = max(self.updated, now)

    def wait(self, now: float, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are there (0 if they are now); takes nothing."""
        self._refill(now)
        return max(0.0, (amount - self.tokens) / self.rate_per_second)

    def take(self, now: float, amount: float = 1.0) -> float:
        """Take ``amount`` tokens if they are there and return 0; else take nothing and return
        how many seconds until they would be."""
        wait = self.wait(now, amount)
        if wait == 0:
            self.tokens -= amount
        return wait

    def charge(self, now: float, amount: float = 1.0) -> None:
        """Take ``amount`` whether or not it is there, into debt of at most one ``burst``: what
        happened is counted even when many requests were in flight at once."""
        self._refill(now)
        self.tokens = max(-self.burst, self.tokens - amount)


class KeyedLimiter:
    """One bucket per key (a client address, a tenant, a link), at most ``max_keys`` remembered:
    the least recently seen are forgotten first (a forgotten key starts full again), so memory
    stays flat whatever the traffic."""

    def __init__(self, per_minute: float, *, burst: float | None = None, max_keys: int = 100_000) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate_per_second = per_minute / 60.0
        self.burst = burst if burst is not None else max(1.0, per_minute / 6)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket.full(self.rate_per_second, self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, now: float, amount: float = 1.0) -> float:
        return self._bucket(key, now).take(now, amount)

    def wait(self, key: str, now: float, amount: float = 1.0) -> float:
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(now, amount)

    def charge(self, key: str, now: float, amount: float = 1.0) -> None:
        self._bucket(key, now).charge(now, amount)


# --- The public survey pages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicLimits:
    """What the public pages allow, each a rate a minute whose whole minute may come at once.

    The abuse worth stopping is guessing links and hammering one link, so those are limited
    tightly; the ceiling per client address is only a safety net, set high because one address
    can be a whole company behind a NAT, a load balancer left untrusted, or a mail scanner.
    """

    #: Requests for links that do not exist, per client: a person mistypes a few, a guesser many.
    misses_per_minute: float = 10
    #: Requests for one link: a scanner's GET and HEAD of every link in one email is 26.
    link_per_minute: float = 60
    #: Requests per client address, whatever they ask for.
    client_per_minute: float = 3000


class PublicLimiter:
    """The limits of :class:`PublicLimits`, by client and by link, in one process: the reference
    the shared buckets (:class:`SharedBucket`, which the pages use) are tested against.

    A client that has missed too often is refused everything until its misses drain, not only
    further misses: a lookup that finds a link answers differently from one that does not, so
    serving the finds would let the guessing go on.
    """

    def __init__(self, limits: PublicLimits, *, max_keys: int = 100_000) -> None:
        self.limits = limits

        def per_minute(rate: float) -> KeyedLimiter:
            return KeyedLimiter(rate, burst=rate, max_keys=max_keys)

        self._misses = per_minute(limits.misses_per_minute)
        self._links = per_minute(limits.link_per_minute)
        self._clients = per_minute(limits.client_per_minute)

    def admit(self, client: str, link: str | None, now: float) -> float:
        """Before a page is looked up: 0 to serve it (and count it), else the seconds to wait
        (and nothing counted). ``link`` is a key of the link asked for; ``None`` for a path that
        cannot be a link, which is a miss anyway."""
        wait = max(
            self._misses.wait(client, now),
            self._clients.wait(client, now),
            self._links.wait(link, now) if link is not None else 0.0,
        )
        if wait > 0:
            return wait
        self._clients.take(client, now)
        if link is not None:
            self._links.take(link, now)
        return 0.0

    def missed(self, client: str, now: float) -> None:
        """The link asked for does not exist. Counted even past the limit (many guesses may be
        in flight at once), up to a minute's worth of debt."""
        self._misses.charge(client, now)


def client_key(address: str) -> str:
    """Whose budget a request spends. IPv6 by its /64, the block one household or host gets, so
    a client cannot dodge the limits by walking through its own addresses; IPv4 as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


# --- Shared by every replica ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedBucket:
    """One limit of :class:`PublicLimits` as a GCRA every replica shares through a database row
    holding ``tat`` (seconds of the Unix epoch; ``None``: no row, a full bucket). The same
    arithmetic as :class:`TokenBucket` with ``burst`` = the whole minute, counted in time: the
    repository's statement computes these in SQL, so that concurrent replicas queue on the row."""

    per_minute: float

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError("per_minute must be positive")

    @property
    def interval(self) -> float:
        return 60.0 / self.per_minute

    @property
    def tolerance(self) -> float:
        """A whole minute's worth may come at once."""
        return 60.0

    def wait(self, tat: float | None, now: float) -> float:
        """Seconds until one more request conforms (0: now); takes nothing."""
        if tat is None:
            return 0.0
        return max(0.0, tat + self.interval - self.tolerance - now)

    def take(self, tat: float | None, now: float) -> float:
        """The row after one request was served."""
        return max(tat if tat is not None else now, now) + self.interval

    def charge(self, tat: float | None, now: float) -> float:
        """The row after one request that counts even past the limit: into debt of at most one
        minute's worth more."""
        return min(self.take(tat, now), now + 2 * self.tolerance)


@dataclass(frozen=True, slots=True)
class PublicBuckets:
    """Which shared buckets one public request checks and spends, by key.

    The keys are prefixed (``miss:``, ``client:``, ``link:``) so the three limits of one client
    are different rows of one table."""

    checked: tuple[tuple[str, SharedBucket], ...]
    taken: tuple[tuple[str, SharedBucket], ...]

    @classmethod
    def of(cls, limits: PublicLimits, client: str, link: str | None) -> PublicBuckets:
        misses = (f"miss:{client}", SharedBucket(limits.misses_per_minute))
        per_client = (f"client:{client}", SharedBucket(limits.client_per_minute))
        taken = (
            (per_client,)
            if link is None
            else (per_client, (f"link:{link}", SharedBucket(limits.link_per_minute)))
        )
        return cls(checked=(misses, *taken), taken=taken)


def missed_bucket(limits: PublicLimits, client: str) -> tuple[str, SharedBucket]:
    return f"miss:{client}", SharedBucket(limits.misses_per_minute)
