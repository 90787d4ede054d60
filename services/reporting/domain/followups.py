"""Did following up work? How fast detractors were reached, whether within the SLA, where the
breaches are, and how many of the customers who answered the recovery survey came back.

The read model's queries count and take percentiles in the database (one row per group, however
many cases); this module names the groups, takes the shares and the intervals, and orders the
rows. It also holds the reference definitions the queries must agree with (:func:`percentile`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from libs.common.events import NpsCategory, nps_category

#: z for a two-sided 95 % interval.
Z_95 = 1.959963984540054
SECONDS_PER_HOUR = 3600.0
#: "Reached within a day": first contact at most this long after the case was opened.
FAST_CONTACT_SECONDS = 86_400.0

BreakdownDimension = Literal["owner", "team", "touchpoint"]
RecoveryDimension = Literal["contact_speed", "root_cause"]

#: What a case without the value is grouped as.
UNASSIGNED = "Unassigned"
NO_TEAM = "No team"
UNKNOWN_TOUCHPOINT = "Unknown"
NO_ROOT_CAUSE = "Not recorded"

#: Contact-speed groups, in the order a person reads them.
WITHIN_24_H = "within 24 h"
LATER = "later"
NEVER_CONTACTED = "never contacted"
CONTACT_SPEEDS = (WITHIN_24_H, LATER, NEVER_CONTACTED)

_NAMELESS: dict[BreakdownDimension, str] = {
    "owner": UNASSIGNED,
    "team": NO_TEAM,
    "touchpoint": UNKNOWN_TOUCHPOINT,
}


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` (0-1) percentile by linear interpolation between the closest ranks, as
    PostgreSQL's ``percentile_cont`` and numpy's default take it: the sorted values' position
    ``fraction * (n - 1)``, counted from 0. None without values."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"a percentile's fraction is from 0 to 1, not {fraction!r}")
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Interval | None:
    """The Wilson score interval for a share of ``successes`` in ``n``: unlike the textbook
    p ± z·√(p(1-p)/n) it stays within 0-1 and means something for small n and for 0 or n
    successes. None when n is 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be from 0 to n, not {successes!r} of {n!r}")
    if n == 0:
        return None
    share = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (share + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / denominator
    # At none or all of n the bound is exactly 0 or 1; rounding would leave it a hair off.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return Interval(low=low, high=high)


def contact_speed(seconds_to_contact: float | None) -> str:
    """The contact-speed group of a case (the queries group by the same rule in SQL)."""
    if seconds_to_contact is None:
        return NEVER_CONTACTED
    return WITHIN_24_H if seconds_to_contact <= FAST_CONTACT_SECONDS else LATER


def recovered(recovery_score: int) -> bool:
    """A customer is won back who now answers as a passive or a promoter (7-10)."""
    return nps_category(recovery_score) is not NpsCategory.DETRACTOR


@dataclass(frozen=True, slots=True)
class CaseTotals:
    """What the query counts over all selected cases. Times are in seconds."""

    cases: int = 0
    contacted: int = 0
    contact_p50_seconds: float | None = None
    contact_p90_seconds: float | None = None
    #: Cases whose first contact came within the SLA.
    within_sla: int = 0
    #: Cases whose SLA outcome is known: contacted with the outcome said, or breached.
    sla_known: int = 0
    breached: int = 0
    resolved: int = 0
    resolution_p50_seconds: float | None = None
    resolution_p90_seconds: float | None = None
    #: The percentiles are the exact ``percentile_cont``; False: from the rollup's histogram, each
    #: within 1 % of it (see :mod:`services.reporting.domain.case_days`).
    exact_percentiles: bool = True


@dataclass(frozen=True, slots=True)
class BreakdownCount:
    """Cases and breaches of one owner, team or touchpoint; ``name`` None where the case has none."""

    dimension: BreakdownDimension
    name: str | None
    cases: int
    breached: int


@dataclass(frozen=True, slots=True)
class RecoveryCount:
    """How many cases of one group got ``recovery_score`` in the recovery survey."""

    dimension: RecoveryDimension
    group: str | None
    recovery_score: int
    cases: int


@dataclass(frozen=True, slots=True)
class BreachRow:
    name: str
    cases: int
    breached: int
    #: This group's share of all breaches (0-1); None when nothing breached.
    share_of_breaches: float | None
    #: Of this group's cases, the share that breached (0-1).
    breach_rate: float | None


@dataclass(frozen=True, slots=True)
class RecoveryRow:
    group: str
    n: int
    recovered: int
    rate: float | None
    interval: Interval | None


@dataclass(frozen=True, slots=True)
class FollowupReport:
    totals: CaseTotals
    breaches_by_owner: list[BreachRow]
    breaches_by_team: list[BreachRow]
    breaches_by_touchpoint: list[BreachRow]
    recovery_by_contact_speed: list[RecoveryRow]
    recovery_by_root_cause: list[RecoveryRow]

    @property
    def within_sla_share(self) -> float | None:
        return _share(self.totals.within_sla, self.totals.sla_known)

    @property
    def contact_hours(self) -> tuple[float | None, float | None]:
        """p50 and p90 of the time to first contact, in hours."""
        return _hours(self.totals.contact_p50_seconds), _hours(self.totals.contact_p90_seconds)

    @property
    def resolution_hours(self) -> tuple[float | None, float | None]:
        return _hours(self.totals.resolution_p50_seconds), _hours(self.totals.resolution_p90_seconds)

    @property
    def recovery_overall(self) -> RecoveryRow:
        """Every case with a recovery score, whatever its group."""
        return _recovery_row(
            "all",
            sum(row.n for row in self.recovery_by_contact_speed),
            sum(row.recovered for row in self.recovery_by_contact_speed),
        )


def followup_report(
    totals: CaseTotals, breakdown: Iterable[BreakdownCount], recovery: Iterable[RecoveryCount]
) -> FollowupReport:
    """The report from the queries' counts: breakdowns with the most breaches first (then by name),
    recovery by contact speed in reading order (every group, even empty), by root cause largest
    first."""
    by_dimension: dict[BreakdownDimension, list[BreakdownCount]] = {"owner": [], "team": [], "touchpoint": []}
    for count in breakdown:
        by_dimension[count.dimension].append(count)
    speeds: dict[str, list[int]] = {speed: [0, 0] for speed in CONTACT_SPEEDS}
    causes: dict[str, list[int]] = {}
    for scored in recovery:
        groups = speeds if scored.dimension == "contact_speed" else causes
        tally = groups.setdefault(scored.group or NO_ROOT_CAUSE, [0, 0])
        tally[0] += scored.cases
        tally[1] += scored.cases if recovered(scored.recovery_score) else 0
    return FollowupReport(
        totals=totals,
        breaches_by_owner=_breach_rows(by_dimension["owner"], totals.breached),
        breaches_by_team=_breach_rows(by_dimension["team"], totals.breached),
        breaches_by_touchpoint=_breach_rows(by_dimension["touchpoint"], totals.breached),
        recovery_by_contact_speed=[_recovery_row(speed, *speeds[speed]) for speed in CONTACT_SPEEDS],
        recovery_by_root_cause=sorted(
            (_recovery_row(cause, n, won) for cause, (n, won) in causes.items()),
            key=lambda row: (-row.n, row.group),
        ),
    )


def _breach_rows(counts: Iterable[BreakdownCount], all_breaches: int) -> list[BreachRow]:
    merged: dict[str, list[int]] = {}
    for count in counts:
        tally = merged.setdefault(count.name or _NAMELESS[count.dimension], [0, 0])
        tally[0] += count.cases
        tally[1] += count.breached
    rows = [
        BreachRow(
            name=name,
            cases=cases,
            breached=breached,
            share_of_breaches=_share(breached, all_breaches),
            breach_rate=_share(breached, cases),
        )
        for name, (cases, breached) in merged.items()
    ]
    return sorted(rows, key=lambda row: (-row.breached, row.name))


def _recovery_row(group: str, n: int, won: int) -> RecoveryRow:
    return RecoveryRow(group=group, n=n, recovered=won, rate=_share(won, n), interval=wilson_interval(won, n))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / SECONDS_PER_HOUR
