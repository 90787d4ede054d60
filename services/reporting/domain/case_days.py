"""The follow-up cases' rollups, and how a report reads them: the summary's case counts and the
follow-ups panel count days, not cases.

Each case counts once, on the UTC day of ``coalesce(opened_at, updated_at)`` (the day the reports'
filters select it by), in three tables kept by the projection in the cases' transaction:

- ``reporting.case_days``: per touchpoint, day, status, breached, SLA outcome, contacted or not,
  owner and team: the summary's counts, the panel's totals and its breakdowns;
- ``reporting.case_recovery_days``: the cases with a recovery score, per touchpoint, day, contact
  speed, root cause and score;
- ``reporting.case_duration_days``: per touchpoint, day and duration (time to first contact, to
  resolution), a log-bucketed histogram of the seconds, for percentiles over ranges too large to
  sort (see :func:`histogram_percentile`);
- ``reporting.case_months``, ``reporting.case_recovery_months`` and
  ``reporting.case_duration_months``: the three summed per UTC month (``month`` is its first day),
  so that a range reads its whole months from the month rows, the whole days of its partial
  months from the day rows and only the partial first and last day from the cases (see
  :func:`plan_case_spans`): a bounded number of rows for any range.

A value the case does not have is ``''`` in a key (the panels name both alike: "Unassigned", ...;
a touchpoint is never empty). A case that changes moves between rows: what its stored version
adds now minus what the version held before added. Everything here is pure.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TypeVar

from .followups import contact_speed
from .funnel_days import Edge, WholeDays, plan_funnel_days

K = TypeVar("K")

#: Above this many cases in the range, the panel's percentiles come from the histogram.
EXACT_PERCENTILE_CASES = 5_000
#: Buckets of the histogram: [RATIO**k, RATIO**(k + 1)) seconds; each read as its geometric middle,
#: within sqrt(RATIO) - 1 (< 1 %) of any value in it, so a percentile is within 1 % too.
RATIO = 1.02
#: The bucket of a duration of zero (or less, which a clock skew could report): read as 0.
ZERO_BUCKET = -1_000_000
#: The durations the histogram keeps.
CONTACT = "contact"
RESOLUTION = "resolution"
#: The SLA outcome of a case in the rollup: contacted in time, not, or not said.
SLA_MET = "met"
SLA_MISSED = "missed"


@dataclass(frozen=True, slots=True)
class CaseVersion:
    """The parts of a stored case the rollups count."""

    status: str
    breached: bool
    updated_at: datetime
    touchpoint: str | None = None
    opened_at: datetime | None = None
    assignee_name: str | None = None
    team_name: str | None = None
    seconds_to_contact: float | None = None
    contact_within_sla: bool | None = None
    seconds_to_resolution: float | None = None
    root_cause: str | None = None
    recovery_score: int | None = None


#: (touchpoint, day, status, breached, SLA outcome, contacted, owner, team).
StateKey = tuple[str, date, str, bool, str, bool, str, str]
#: (touchpoint, day, contact speed, root cause, recovery score).
RecoveryKey = tuple[str, date, str, str, int]
#: (touchpoint, day, duration, bucket).
DurationKey = tuple[str, date, str, int]


@dataclass
class CaseRollupChanges:
    """What a batch changes in each rollup, per (tenant, key): only rows that change."""

    states: dict[tuple[uuid.UUID, StateKey], int] = field(default_factory=dict)
    recoveries: dict[tuple[uuid.UUID, RecoveryKey], int] = field(default_factory=dict)
    durations: dict[tuple[uuid.UUID, DurationKey], int] = field(default_factory=dict)

    def add(self, tenant_id: uuid.UUID, case: CaseVersion, sign: int) -> None:
        day = case_day(case)
        touchpoint = case.touchpoint or ""
        _bump(self.states, (tenant_id, state_key(case)), sign)
        if case.recovery_score is not None:
            speed = contact_speed(case.seconds_to_contact)
            recovery = (touchpoint, day, speed, case.root_cause or "", case.recovery_score)
            _bump(self.recoveries, (tenant_id, recovery), sign)
        for metric, seconds in ((CONTACT, case.seconds_to_contact), (RESOLUTION, case.seconds_to_resolution)):
            if seconds is not None:
                _bump(self.durations, (tenant_id, (touchpoint, day, metric, bucket_of(seconds))), sign)

    def without_zeros(self) -> CaseRollupChanges:
        return CaseRollupChanges(
            {key: n for key, n in self.states.items() if n},
            {key: n for key, n in self.recoveries.items() if n},
            {key: n for key, n in self.durations.items() if n},
        )

    def state_months(self) -> dict[tuple[uuid.UUID, StateKey], int]:
        """The day rows' changes summed per month (the key's day: the month's first day)."""
        return _per_month(self.states, lambda key: (key[0], key[1].replace(day=1), *key[2:]))

    def recovery_months(self) -> dict[tuple[uuid.UUID, RecoveryKey], int]:
        return _per_month(self.recoveries, lambda key: (key[0], key[1].replace(day=1), *key[2:]))

    def duration_months(self) -> dict[tuple[uuid.UUID, DurationKey], int]:
        return _per_month(self.durations, lambda key: (key[0], key[1].replace(day=1), *key[2:]))


def _per_month(
    counts: Mapping[tuple[uuid.UUID, K], int], monthly: Callable[[K], K]
) -> dict[tuple[uuid.UUID, K], int]:
    months: dict[tuple[uuid.UUID, K], int] = {}
    for (tenant_id, key), n in counts.items():
        _bump(months, (tenant_id, monthly(key)), n)
    return {key: n for key, n in months.items() if n}


def _bump(counts: dict[K, int], key: K, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def case_day(case: CaseVersion) -> date:
    """The UTC day a case counts on: its opening's, while that is unknown its update's."""
    return (case.opened_at or case.updated_at).astimezone(UTC).date()


def sla_outcome(contact_within_sla: bool | None) -> str:
    if contact_within_sla is None:
        return ""
    return SLA_MET if contact_within_sla else SLA_MISSED


def state_key(case: CaseVersion) -> StateKey:
    return (
        case.touchpoint or "",
        case_day(case),
        case.status,
        case.breached,
        sla_outcome(case.contact_within_sla),
        case.seconds_to_contact is not None,
        case.assignee_name or "",
        case.team_name or "",
    )


def case_changes(
    versions: Iterable[tuple[uuid.UUID, CaseVersion | None, CaseVersion]],
) -> CaseRollupChanges:
    """How the rollups change when each case (tenant, held before or None, stored now) is stored."""
    changes = CaseRollupChanges()
    for tenant_id, held, stored in versions:
        changes.add(tenant_id, stored, 1)
        if held is not None:
            changes.add(tenant_id, held, -1)
    return changes.without_zeros()


def bucket_of(seconds: float) -> int:
    """The histogram's bucket of a duration (the migration's SQL computes the same)."""
    if seconds <= 0:
        return ZERO_BUCKET
    return math.floor(math.log(seconds) / math.log(RATIO))


def bucket_value(bucket: int) -> float:
    """What a bucket's durations are read as: the geometric middle of its bounds."""
    return 0.0 if bucket == ZERO_BUCKET else float(RATIO ** (bucket + 0.5))


def histogram_percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The ``fraction`` percentile as :func:`followups.percentile` takes it, of the durations the
    histogram (bucket: how many) holds, each read as its bucket's middle: within 1 % of the exact
    one, as the interpolation between two ranks of values within 1 % is. None when empty."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"a percentile's fraction is from 0 to 1, not {fraction!r}")
    counted = sorted((bucket, n) for bucket, n in histogram.items() if n > 0)
    total = sum(n for _, n in counted)
    if total == 0:
        return None
    position = fraction * (total - 1)
    below = math.floor(position)
    above = min(below + 1, total - 1)
    low, high = _at_rank(counted, below), _at_rank(counted, above)
    return low + (high - low) * (position - below)


def _at_rank(counted: list[tuple[int, int]], rank: int) -> float:
    seen = 0
    for bucket, n in counted:
        seen += n
        if rank < seen:
            return bucket_value(bucket)
    return bucket_value(counted[-1][0])


def _month_at_or_after(moment: datetime) -> date | None:
    day = moment.astimezone(UTC).date()
    month = day.replace(day=1)
    if datetime.combine(month, time(), tzinfo=UTC) == moment:
        return month
    if month.year == date.max.year and month.month == 12:
        return None
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CaseSpans:
    """How a range splits for the case rollups: whole UTC months from the month rows (None when
    none), the whole days around them from the day rows (at most two stretches, each inside two
    adjacent months), and the partial days at the ends from the cases (at most two edges)."""

    months: WholeDays | None
    days: tuple[WholeDays, ...] = ()
    edges: tuple[Edge, ...] = ()


def plan_case_spans(since: datetime | None, until: datetime | None) -> CaseSpans:
    """Split [since, until) (None: unbounded) into whole months, whole days and partial edges."""
    plan = plan_funnel_days(since, until)
    if plan.days is None:
        return CaseSpans(None, (), plan.edges)
    first, stop = plan.days.first, plan.days.stop
    month_first = None if first is None else _month_at_or_after(_midnight(first))
    month_stop = None if stop is None else stop.replace(day=1)
    if first is not None and (month_first is None or (month_stop is not None and month_first >= month_stop)):
        return CaseSpans(None, (plan.days,), plan.edges)
    days = []
    if first is not None and month_first is not None and month_first != first:
        days.append(WholeDays(first, month_first))
    if stop is not None and month_stop is not None and month_stop != stop:
        days.append(WholeDays(month_stop, stop))
    return CaseSpans(WholeDays(month_first, month_stop), tuple(days), plan.edges)
