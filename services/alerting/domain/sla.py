"""The follow-up SLA: how soon a detractor must hear from us, and what happens when nobody calls.

Every step's time follows from the moment the case opened, its priority and the policy alone (all
counted in business time, :class:`~services.alerting.domain.business_hours.BusinessHours`), so the
SLA job can keep each open case's ``next_check_at`` in an index and only ever load cases that are due.

When a step is due: a reminder is due *at* its time (``now >= reminder_at``), but a breach only
*after* its due time: the due instant itself is still in time (``now > first_contact_due``). The
escalation to the team lead comes with the breach; the one to the CX manager ``escalation_repeat``
of business time after the due time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from services.alerting.domain.business_hours import DEFAULT_HOURS, BusinessHours

#: A breach is due from the first instant after its due time (datetimes count in microseconds).
_JUST_AFTER = timedelta(microseconds=1)


class Priority(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


def priority_of(score: int) -> Priority:
    """0-4 is urgent (ready to trash you on social media), 5-6 normal; promoters and passives have no case."""
    if not 0 <= score <= 10:
        raise ValueError(f"an NPS score is 0-10, not {score}")
    if score >= 7:
        raise ValueError(f"a score of {score} is not a detractor's (0-6): it opens no follow-up case")
    return Priority.URGENT if score <= 4 else Priority.NORMAL


@dataclass(frozen=True, slots=True)
class Targets:
    """Business time from opening the case to the first contact with the customer, and to resolving it."""

    first_contact: timedelta
    resolution: timedelta

    def __post_init__(self) -> None:
        if self.first_contact <= timedelta(0) or self.resolution <= timedelta(0):
            raise ValueError(
                f"SLA targets must be positive, not first contact {self.first_contact} / "
                f"resolution {self.resolution}"
            )
        if self.resolution < self.first_contact:
            raise ValueError(
                f"the resolution target ({self.resolution}) cannot be shorter than the first-contact "
                f"target ({self.first_contact})"
            )


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """A tenant's SLA: targets per priority, when to remind the owner (a fraction of the target), how
    long after a breach to escalate again, and the business hours all of it is counted in."""

    targets: Mapping[Priority, Targets]
    reminder_fraction: float = 0.75
    escalation_repeat: timedelta = timedelta(hours=4)
    hours: BusinessHours = DEFAULT_HOURS

    def __post_init__(self) -> None:
        missing = [priority.value for priority in Priority if priority not in self.targets]
        if missing:
            raise ValueError(f"an SLA policy needs targets for every priority; missing: {', '.join(missing)}")
        if not 0 < self.reminder_fraction < 1:
            raise ValueError(f"the reminder fraction must be between 0 and 1, not {self.reminder_fraction}")
        if self.escalation_repeat <= timedelta(0):
            raise ValueError(f"the escalation repeat must be positive, not {self.escalation_repeat}")
        # A read-only copy: a policy is a value; changing the caller's dict must not change it.
        object.__setattr__(self, "targets", MappingProxyType(dict(self.targets)))


#: The platform's defaults, in business hours of :data:`DEFAULT_HOURS` (8-hour days): a normal case
#: is contacted within 24 business hours (three working days) and resolved within 40 (five working
#: days); an urgent one within 4 and 16 (half a day and two days).
DEFAULT_POLICY = SlaPolicy(
    targets={
        Priority.URGENT: Targets(first_contact=timedelta(hours=4), resolution=timedelta(hours=16)),
        Priority.NORMAL: Targets(first_contact=timedelta(hours=24), resolution=timedelta(hours=40)),
    }
)


class Step(StrEnum):
    """What the SLA job does to a case, in the order it normally happens."""

    REMINDER = "reminder"  # to the owner, at reminder_fraction of the first-contact target
    BREACH = "breach"  # the first-contact due time passed without a contact
    ESCALATE_TEAM_LEAD = "escalate_team_lead"  # with the breach
    ESCALATE_CX_MANAGER = "escalate_cx_manager"  # escalation_repeat after the due time
    RESOLUTION_REMINDER = "resolution_reminder"  # at reminder_fraction of the resolution target
    RESOLUTION_BREACH = "resolution_breach"  # the resolution due time passed, still unresolved


@dataclass(frozen=True, slots=True)
class Clock:
    """A case's SLA times, as UTC instants."""

    first_contact_due: datetime
    reminder_at: datetime
    resolution_due: datetime
    resolution_reminder_at: datetime
    cx_manager_at: datetime


def clock(opened_at: datetime, priority: Priority, policy: SlaPolicy) -> Clock:
    """Every time on a case's SLA clock, from when it opened (all in the policy's business hours)."""
    targets, hours, fraction = policy.targets[priority], policy.hours, policy.reminder_fraction
    first_contact_due = hours.add(opened_at, targets.first_contact)
    return Clock(
        first_contact_due=first_contact_due,
        reminder_at=hours.add(opened_at, targets.first_contact * fraction),
        resolution_due=hours.add(opened_at, targets.resolution),
        resolution_reminder_at=hours.add(opened_at, targets.resolution * fraction),
        cx_manager_at=hours.add(first_contact_due, policy.escalation_repeat),
    )


@dataclass(frozen=True, slots=True)
class ClockState:
    """What is known of a case: when it opened, its priority, whether and when it was contacted and
    resolved, and the steps already taken and recorded."""

    opened_at: datetime
    priority: Priority
    contacted_at: datetime | None = None
    resolved_at: datetime | None = None
    done: frozenset[Step] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Due:
    """The steps to take now, in chronological order, and when to look at the case again (``None``
    when nothing more can happen to it, e.g. it is resolved)."""

    steps: tuple[Step, ...]
    next_check_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Rule:
    #: The first instant at which the step is due.
    at: Callable[[Clock], datetime]
    #: Whether the step still applies to the case at a given instant.
    applies: Callable[[ClockState, Clock, datetime], bool]


def _uncontacted(state: ClockState, _: Clock, __: datetime) -> bool:
    return state.contacted_at is None


def _breached(state: ClockState, times: Clock, _: datetime) -> bool:
    # A contact after the due time is still a breach: the job may not have run in between.
    return state.contacted_at is None or state.contacted_at > times.first_contact_due


def _before_first_contact_due(state: ClockState, times: Clock, now: datetime) -> bool:
    # A reminder that "time is running out" is false once it has run out: the breach replaces it.
    return state.contacted_at is None and now <= times.first_contact_due


def _before_resolution_due(_: ClockState, times: Clock, now: datetime) -> bool:
    return now <= times.resolution_due


def _always(_: ClockState, __: Clock, ___: datetime) -> bool:
    return True


#: In :class:`Step` order, which breaks ties between steps due at the same instant.
_RULES: Mapping[Step, _Rule] = {
    Step.REMINDER: _Rule(lambda times: times.reminder_at, _before_first_contact_due),
    Step.BREACH: _Rule(lambda times: times.first_contact_due + _JUST_AFTER, _breached),
    Step.ESCALATE_TEAM_LEAD: _Rule(lambda times: times.first_contact_due + _JUST_AFTER, _uncontacted),
    Step.ESCALATE_CX_MANAGER: _Rule(lambda times: times.cx_manager_at, _uncontacted),
    Step.RESOLUTION_REMINDER: _Rule(lambda times: times.resolution_reminder_at, _before_resolution_due),
    Step.RESOLUTION_BREACH: _Rule(lambda times: times.resolution_due + _JUST_AFTER, _always),
}
_ORDER = {step: index for index, step in enumerate(Step)}


def due_steps(state: ClockState, policy: SlaPolicy, now: datetime) -> Due:
    """The steps whose time has come at ``now``, are not done and still apply, and the earliest later
    instant at which another could come due. Once a case is resolved nothing applies any more; once
    it is contacted the first-contact steps stop (a breach already done stays done), but the
    resolution steps go on until it is resolved."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime (with a time zone), not {now.isoformat()}")
    if state.resolved_at is not None:
        return Due(steps=(), next_check_at=None)
    times = clock(state.opened_at, state.priority, policy)
    due: list[tuple[datetime, Step]] = []
    later: list[datetime] = []
    for step, rule in _RULES.items():
        if step in state.done:
            continue
        at = rule.at(times)
        if at <= now and rule.applies(state, times, now):
            due.append((at, step))
        elif at > now and rule.applies(state, times, at):
            later.append(at)
    due.sort(key=lambda pair: (pair[0], _ORDER[pair[1]]))
    return Due(steps=tuple(step for _, step in due), next_check_at=min(later, default=None))


def within_first_contact(
    opened_at: datetime, contacted_at: datetime, priority: Priority, policy: SlaPolicy
) -> bool:
    """Whether the customer was contacted in time (at the due instant itself still counts)."""
    return contacted_at <= clock(opened_at, priority, policy).first_contact_due


def business_time_to(opened_at: datetime, at: datetime, policy: SlaPolicy) -> timedelta:
    """Business time from opening a case to ``at`` (e.g. the first contact), for reporting."""
    return policy.hours.elapsed(opened_at, at)
