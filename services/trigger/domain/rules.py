"""Deciding, for each purchase or ticket, whether to ask that customer, when, and if not, why not.

Every candidate gets exactly one decision. The checks run in a fixed order, so the recorded reason
is the first rule that stopped the invitation:

1. a touchpoint takes the event type and its filters pass             else ``filtered``
2. the order/ticket was cancelled before it was decided                 else ``cancelled``
3. the order/ticket was not decided for this touchpoint already         else ``duplicate``
4. the customer has not unsubscribed, bounced or complained             else ``unsubscribed``
5. there is an email address                                            else ``no_email``
6. the tenant-wide rest period has passed (since the last invitation,
   or the last response, as the tenant chose; see below)                else ``rest_period``
7. the touchpoint's own rest period has passed                          else ``rest_period``
8. the customer is in this cycle's sample                               else ``sampled_out``
9. the touchpoint's daily quota is not used up                          else ``quota``

An invitation goes out after the touchpoint's delay, inside its send window: ``invited`` when that
is now, ``delayed`` (with the time) when it is later.

The two clocks of rule 6:

- ``invitation`` (the default): the rest period counts from the last invitation.
- ``response``: while an invitation is *outstanding* (requested or sent, and not yet answered,
  expired, failed, bounced or cancelled) nobody gets another one: ``rest_period`` with the detail
  "invitation <id> is outstanding" and no ``rest_until``, since that depends on the customer.
  Once it is closed, the rest period counts from the last response, or from the last invitation
  for a customer who never answered. Without the outstanding rule, someone who answered long ago
  would be invited again at every purchase while the newest invitation waits for an answer.
  (Under the invitation clock the rest period from that invitation covers it already.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from services.trigger.domain.cohorts import RELATIONSHIP_DUE
from services.trigger.domain.sampling import cycle_of, sampled_in
from services.trigger.domain.schedule import next_send_time
from services.trigger.domain.touchpoints import TouchpointRule

RestClock = Literal["invitation", "response"]


class Outcome(StrEnum):
    INVITED = "invited"
    DELAYED = "delayed"
    SKIPPED = "skipped"
    #: An overriding event (cancellation, refund, unsubscribe) withdrew pending invitations.
    CANCELLED = "cancelled"
    #: An event that changes what we know (consent, contact details) rather than asking anyone.
    RECORDED = "recorded"


class Reason(StrEnum):
    REST_PERIOD = "rest_period"
    SAMPLED_OUT = "sampled_out"
    UNSUBSCRIBED = "unsubscribed"
    NO_EMAIL = "no_email"
    DUPLICATE = "duplicate"
    FILTERED = "filtered"
    CANCELLED = "cancelled"
    QUOTA = "quota"
    #: The customer was erased after this event happened: it is not taken in again.
    ERASED = "erased"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A purchase or a closed ticket, as the rules see it."""

    event_id: str
    event_type: str
    customer_id: str
    email: str | None
    source_ref: str  # "order:<id>" or "ticket:<id>"
    data: Mapping[str, Any] = field(default_factory=dict)
    time_zone: str | None = None
    is_test: bool = False
    #: The invitation it becomes if it is invited (derived from the event, so known beforehand).
    invitation_id: str | None = None


@dataclass(slots=True)
class CustomerState:
    last_invited_at: datetime | None = None
    last_responded_at: datetime | None = None
    touchpoint_invited: dict[str, datetime] = field(default_factory=dict)
    suppressed: bool = False
    email: str | None = None
    time_zone: str | None = None
    #: The invitation not yet answered, expired, failed or cancelled, if any.
    outstanding_invitation: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    rest_period: timedelta
    clock: RestClock = "invitation"


@dataclass(slots=True)
class Ledger:
    """What the rules know and update while deciding a batch: customers, decided and cancelled
    orders/tickets, quota used today. Loaded in one go before the batch; written back after it."""

    customers: dict[str, CustomerState] = field(default_factory=dict)
    decided_sources: set[tuple[str, str]] = field(default_factory=set)  # (source_ref, touchpoint)
    cancelled_sources: set[str] = field(default_factory=set)
    suppressed_emails: set[str] = field(default_factory=set)  # lower-cased
    quota_used: dict[tuple[str, date], int] = field(default_factory=dict)

    def customer(self, customer_id: str) -> CustomerState:
        state = self.customers.get(customer_id)
        if state is None:
            state = self.customers[customer_id] = CustomerState()
        return state


@dataclass(frozen=True, slots=True)
class Decision:
    candidate: Candidate
    outcome: Outcome
    touchpoint: TouchpointRule | None = None
    reason: Reason | None = None
    send_at: datetime | None = None
    rest_until: datetime | None = None
    detail: str | None = None
    email: str | None = None

    @property
    def invited(self) -> bool:
        return self.outcome in (Outcome.INVITED, Outcome.DELAYED)


def rest_period_ends(last: datetime | None, rest_period: timedelta) -> datetime | None:
    """When the customer may be asked again; ``None`` if never asked (or answered)."""
    return None if last is None else last + rest_period


def in_rest_period(now: datetime, last: datetime | None, rest_period: timedelta) -> bool:
    ends = rest_period_ends(last, rest_period)
    return ends is not None and now < ends


def tenant_policy(rest_period_days: int | None, rest_clock: str | None, *, default_days: int) -> Policy:
    """The tenant-wide rules: the tenant's own rest period where it set one, else the platform's
    default (``default_days``); counted from the last invitation unless the tenant chose the
    response clock. A touchpoint's own rest period applies on top (see :func:`resting`)."""
    days = default_days if rest_period_days is None else rest_period_days
    return Policy(
        rest_period=timedelta(days=days), clock="response" if rest_clock == "response" else "invitation"
    )


@dataclass(frozen=True, slots=True)
class Resting:
    """Why a customer may not be asked yet: until when (``None``: until they answer), and a detail."""

    until: datetime | None
    detail: str | None = None


def resting(
    customer: CustomerState, touchpoint: TouchpointRule, policy: Policy, now: datetime
) -> Resting | None:
    """The rest-period rules, in order: an outstanding invitation under the response clock, the
    tenant-wide rest period, then the touchpoint's own."""
    if awaits_answer(customer, policy):
        return Resting(None, f"invitation {customer.outstanding_invitation} is outstanding")
    last = clock_start(customer, policy)
    if in_rest_period(now, last, policy.rest_period):
        return Resting(rest_period_ends(last, policy.rest_period))
    if touchpoint.rest_period is not None:
        last_here = customer.touchpoint_invited.get(touchpoint.name)
        if in_rest_period(now, last_here, touchpoint.rest_period):
            return Resting(
                rest_period_ends(last_here, touchpoint.rest_period), f"rest period of {touchpoint.name}"
            )
    return None


def may_be_asked(customer: CustomerState, touchpoint: TouchpointRule, policy: Policy, now: datetime) -> bool:
    """Whether a known contact passes the consent, email and rest-period rules right now: the
    cohort scheduler draws only accounts with at least one such contact."""
    if customer.suppressed or not customer.email:
        return False
    return resting(customer, touchpoint, policy, now) is None


def clock_start(customer: CustomerState, policy: Policy) -> datetime | None:
    """The tenant-wide clock runs from the last response when the tenant chose so and there was
    one; otherwise (and for customers who never answered) from the last invitation."""
    if policy.clock == "response" and customer.last_responded_at is not None:
        return customer.last_responded_at
    return customer.last_invited_at


def awaits_answer(customer: CustomerState, policy: Policy) -> bool:
    """Under the response clock, an outstanding invitation holds every other one back."""
    return policy.clock == "response" and customer.outstanding_invitation is not None


def choose_touchpoint(
    candidate: Candidate, touchpoints: Sequence[TouchpointRule]
) -> tuple[TouchpointRule | None, str | None]:
    """The first touchpoint (by priority) that takes the event, or the first that reacts to its
    type with the reason it declined, or nothing at all."""
    declined: tuple[TouchpointRule, str] | None = None
    named = candidate.data.get("touchpoint") if candidate.event_type == RELATIONSHIP_DUE else None
    for touchpoint in sorted(touchpoints, key=lambda t: (t.priority, t.name)):
        if candidate.event_type not in touchpoint.event_types or named not in (None, touchpoint.name):
            continue
        failed = touchpoint.first_failed_filter(candidate.data, candidate.is_test)
        if failed is None:
            return touchpoint, None
        declined = declined or (touchpoint, failed)
    if declined is None:
        return None, f"no touchpoint takes {candidate.event_type}"
    return declined[0], declined[1]


def decide(
    candidates: Iterable[Candidate],
    touchpoints: Sequence[TouchpointRule],
    ledger: Ledger,
    policy: Policy,
    now: datetime,
    *,
    tenant_id: str,
) -> list[Decision]:
    """Decide a batch in order, updating ``ledger`` as invitations are made, so a batch decides
    exactly as the same events would one at a time."""
    return [_decide_one(candidate, touchpoints, ledger, policy, now, tenant_id) for candidate in candidates]


def _decide_one(
    candidate: Candidate,
    touchpoints: Sequence[TouchpointRule],
    ledger: Ledger,
    policy: Policy,
    now: datetime,
    tenant_id: str,
) -> Decision:
    touchpoint, declined = choose_touchpoint(candidate, touchpoints)
    if touchpoint is None or declined is not None:
        return Decision(candidate, Outcome.SKIPPED, touchpoint, Reason.FILTERED, detail=declined)

    def skip(reason: Reason, **details: Any) -> Decision:
        return Decision(candidate, Outcome.SKIPPED, touchpoint, reason, **details)

    if candidate.source_ref in ledger.cancelled_sources:
        return skip(Reason.CANCELLED, detail=f"{candidate.source_ref} was cancelled")
    if (candidate.source_ref, touchpoint.name) in ledger.decided_sources:
        return skip(Reason.DUPLICATE, detail=f"{candidate.source_ref} was decided already")
    customer = ledger.customer(candidate.customer_id)
    email = candidate.email or customer.email
    if customer.suppressed or (email is not None and email.lower() in ledger.suppressed_emails):
        return skip(Reason.UNSUBSCRIBED)
    # From here on the order is decided: a retried delivery of it is a duplicate.
    ledger.decided_sources.add((candidate.source_ref, touchpoint.name))
    if not email:
        return skip(Reason.NO_EMAIL)
    rest = resting(customer, touchpoint, policy, now)
    if rest is not None:
        return skip(Reason.REST_PERIOD, rest_until=rest.until, detail=rest.detail)
    if touchpoint.sample_percent is not None:
        cycle = cycle_of(now, touchpoint.sample_cycle)
        if not sampled_in(
            tenant_id, touchpoint.name, candidate.customer_id, cycle, touchpoint.sample_percent
        ):
            return skip(Reason.SAMPLED_OUT, detail=f"{touchpoint.sample_percent:g} % sample, cycle {cycle}")
    day = now.date()
    if touchpoint.daily_quota is not None:
        used = ledger.quota_used.get((touchpoint.name, day), 0)
        if used >= touchpoint.daily_quota:
            return skip(Reason.QUOTA, detail=f"{touchpoint.daily_quota} invitations a day")
    send_at = next_send_time(
        now + touchpoint.delay, touchpoint.send_window, candidate.time_zone or customer.time_zone
    )
    customer.last_invited_at = now
    customer.touchpoint_invited[touchpoint.name] = now
    customer.outstanding_invitation = candidate.invitation_id or candidate.event_id
    ledger.quota_used[(touchpoint.name, day)] = ledger.quota_used.get((touchpoint.name, day), 0) + 1
    outcome = Outcome.DELAYED if send_at > now else Outcome.INVITED
    return Decision(candidate, outcome, touchpoint, send_at=send_at, email=email)
