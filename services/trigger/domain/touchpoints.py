"""Touchpoints: which events a touchpoint reacts to, and the rules it applies before asking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any, Literal

from libs.common.events import PURCHASE_COMPLETED, TICKET_CLOSED

FilterOp = Literal["eq", "ne", "in", "not_in", "exists", "missing"]
Cycle = Literal["week", "month", "quarter"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_MISSING = object()


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``status``, ``customer.country``), or ``_MISSING``."""
    current: Any = data
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    return bool(actual == expected)


@dataclass(frozen=True, slots=True)
class Filter:
    """A condition on the event's data, e.g. ``status in [paid, fulfilled]``."""

    field: str
    op: FilterOp
    value: Any = None

    def matches(self, data: Mapping[str, Any]) -> bool:
        actual = lookup(data, self.field)
        present = actual is not _MISSING and actual is not None
        if self.op == "exists":
            return present
        if self.op == "missing":
            return not present
        if self.op == "eq":
            return present and _same(actual, self.value)
        if self.op == "ne":
            return not (present and _same(actual, self.value))
        options = self.value if isinstance(self.value, list | tuple) else [self.value]
        inside = present and any(_same(actual, option) for option in options)
        return inside if self.op == "in" else not inside

    def describe(self) -> str:
        if self.op in ("exists", "missing"):
            return f"{self.field} {self.op}"
        return f"{self.field} {self.op} {self.value!r}"


@dataclass(frozen=True, slots=True)
class SendWindow:
    """When invitations may go out, in the customer's local time (``time_zone`` if theirs is unknown)."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class TouchpointRule:
    name: str
    version: int
    event_types: frozenset[str]
    filters: tuple[Filter, ...] = ()
    delay: timedelta = timedelta(0)
    send_window: SendWindow | None = None
    rest_period: timedelta | None = None
    sample_percent: float | None = None
    sample_cycle: Cycle = "month"
    daily_quota: int | None = None
    include_test_events: bool = False
    template: str = "default"
    channel: str = "email"
    priority: int = 100
    accounts_per_period: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def first_failed_filter(self, data: Mapping[str, Any], is_test: bool) -> str | None:
        """Why this touchpoint does not take the event, or None if it does."""
        if is_test and not self.include_test_events:
            return "test event"
        for condition in self.filters:
            if not condition.matches(data):
                return f"filter {condition.describe()} not met"
        return None


#: What a tenant gets until it configures touchpoints of its own (version 0 means built in).
DEFAULT_TOUCHPOINTS: tuple[TouchpointRule, ...] = (
    TouchpointRule(name="webshop-purchase", version=0, event_types=frozenset({PURCHASE_COMPLETED})),
    TouchpointRule(name="support-ticket", version=0, event_types=frozenset({TICKET_CLOSED})),
)

#: The intake event types a touchpoint can take: each should be taken by at least one.
SURVEYED_INTAKE_TYPES = (PURCHASE_COMPLETED, TICKET_CLOSED)


def coverage_warnings(
    after: Sequence[TouchpointRule], *, replaced: Sequence[TouchpointRule] = ()
) -> list[str]:
    """What a touchpoint change silently stops: once a tenant has a touchpoint of its own the
    built-in ones no longer apply, so the first touchpoint for purchases leaves tickets to nobody
    (and the other way round); a later change can do the same. One warning naming every intake
    type no touchpoint takes after the change, and the built-ins if this change ``replaced`` them."""
    taken = {event_type for rule in after for event_type in rule.event_types}
    untaken = [event_type for event_type in SURVEYED_INTAKE_TYPES if event_type not in taken]
    if not untaken:
        return []
    verb = "is" if len(untaken) == 1 else "are"
    warning = f"{' and '.join(untaken)} {verb} taken by no touchpoint now"
    if replaced:
        built_in = " and ".join(rule.name for rule in replaced)
        warning = f"the built-in touchpoints {built_in} no longer apply: {warning}"
    return [warning]
