"""The trigger's rules: who is asked, when, and why not."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.events import PURCHASE_COMPLETED, TICKET_CLOSED
from services.trigger.domain.rules import (
    Candidate,
    Ledger,
    Outcome,
    Policy,
    Reason,
    decide,
    in_rest_period,
    may_be_asked,
    rest_period_ends,
)
from services.trigger.domain.sampling import cycle_of, sampled_in
from services.trigger.domain.schedule import next_send_time
from services.trigger.domain.touchpoints import (
    DEFAULT_TOUCHPOINTS,
    Filter,
    SendWindow,
    TouchpointRule,
    coverage_warnings,
)
from tests.support.factories import purchase_candidate as purchase

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
REST = timedelta(days=180)
POLICY = Policy(rest_period=REST)
TENANT = "00000000-0000-4000-8000-000000000001"


def one(
    candidate: Candidate,
    touchpoints: Any = DEFAULT_TOUCHPOINTS,
    ledger: Ledger | None = None,
    policy: Policy = POLICY,
    now: datetime = NOW,
) -> Any:
    [decision] = decide([candidate], touchpoints, ledger or Ledger(), policy, now, tenant_id=TENANT)
    return decision


def test_a_customer_never_asked_is_invited_now() -> None:
    decision = one(purchase("e1", "c1"))
    assert (decision.outcome, decision.touchpoint.name, decision.send_at) == (
        Outcome.INVITED,
        "webshop-purchase",
        NOW,
    )


def test_inside_the_rest_period_is_skipped_with_the_date_it_ends() -> None:
    ledger = Ledger()
    ledger.customer("c1").last_invited_at = NOW - timedelta(days=179)
    decision = one(purchase("e1", "c1"), ledger=ledger)
    assert (decision.outcome, decision.reason) == (Outcome.SKIPPED, Reason.REST_PERIOD)
    assert decision.rest_until == NOW - timedelta(days=179) + REST


def test_the_rest_period_ends_exactly_after_its_length() -> None:
    assert in_rest_period(NOW, NOW - REST + timedelta(seconds=1), REST)
    assert not in_rest_period(NOW, NOW - REST, REST)
    assert rest_period_ends(None, REST) is None


def test_the_response_clock_counts_from_the_last_answer() -> None:
    ledger = Ledger()
    ledger.customer("c1").last_invited_at = NOW - timedelta(days=200)
    ledger.customer("c1").last_responded_at = NOW - timedelta(days=10)
    by_invitation = one(purchase("e1", "c1"), ledger=ledger)
    ledger.customer("c1").last_invited_at = NOW - timedelta(days=200)
    by_response = one(purchase("e2", "c1"), ledger=ledger, policy=Policy(REST, clock="response"))
    assert by_invitation.outcome is Outcome.INVITED
    assert (by_response.outcome, by_response.reason) == (Outcome.SKIPPED, Reason.REST_PERIOD)


RESPONSE_CLOCK = Policy(REST, clock="response")


def test_under_the_response_clock_an_outstanding_invitation_holds_back_every_other() -> None:
    # Answered 181 days ago, invited yesterday: each purchase used to invite again.
    ledger = Ledger()
    customer = ledger.customer("c1")
    customer.last_responded_at = NOW - timedelta(days=181)
    customer.last_invited_at = NOW - timedelta(days=1)
    customer.outstanding_invitation = "inv-1"
    customer.email = "jane@example.com"
    held = one(purchase("e1", "c1"), ledger=ledger, policy=RESPONSE_CLOCK)
    assert (held.outcome, held.reason, held.detail, held.rest_until) == (
        Outcome.SKIPPED,
        Reason.REST_PERIOD,
        "invitation inv-1 is outstanding",
        None,
    )
    assert not may_be_asked(customer, DEFAULT_TOUCHPOINTS[0], RESPONSE_CLOCK, NOW)
    # Once closed, the rest period counts from the last answer, long past.
    customer.outstanding_invitation = None
    assert may_be_asked(customer, DEFAULT_TOUCHPOINTS[0], RESPONSE_CLOCK, NOW)
    asked = one(purchase("e2", "c1", invitation_id="inv-2"), ledger=ledger, policy=RESPONSE_CLOCK)
    assert asked.outcome is Outcome.INVITED
    assert customer.outstanding_invitation == "inv-2"


def test_the_invitation_clock_ignores_outstanding_invitations() -> None:
    ledger = Ledger()
    ledger.customer("c1").last_invited_at = NOW - timedelta(days=200)
    ledger.customer("c1").outstanding_invitation = "inv-1"
    assert one(purchase("e1", "c1"), ledger=ledger).outcome is Outcome.INVITED


def test_the_response_clock_counts_from_the_last_invitation_for_who_never_answered() -> None:
    ledger = Ledger()
    ledger.customer("c1").last_invited_at = NOW - timedelta(days=100)
    skipped = one(purchase("e1", "c1"), ledger=ledger, policy=RESPONSE_CLOCK)
    assert (skipped.reason, skipped.rest_until) == (Reason.REST_PERIOD, NOW + timedelta(days=80))


def test_a_touchpoint_has_its_own_rest_period_on_top_of_the_tenants() -> None:
    delivery = TouchpointRule(
        name="delivery",
        version=3,
        event_types=frozenset({PURCHASE_COMPLETED}),
        rest_period=timedelta(days=30),
    )
    ledger = Ledger()
    ledger.customer("c1").touchpoint_invited["delivery"] = NOW - timedelta(days=20)
    decision = one(purchase("e1", "c1"), [delivery], ledger, Policy(timedelta(0)))
    assert (decision.reason, decision.detail) == (Reason.REST_PERIOD, "rest period of delivery")
    assert decision.touchpoint.version == 3


def test_a_second_event_in_the_same_batch_is_inside_the_rest_period() -> None:
    first, second = decide(
        [purchase("e1", "c1"), purchase("e2", "c1")],
        DEFAULT_TOUCHPOINTS,
        Ledger(),
        POLICY,
        NOW,
        tenant_id=TENANT,
    )
    assert first.outcome is Outcome.INVITED
    assert (second.outcome, second.reason) == (Outcome.SKIPPED, Reason.REST_PERIOD)


def test_no_email_is_skipped_but_a_known_address_is_used() -> None:
    assert one(purchase("e1", "c1", email=None)).reason is Reason.NO_EMAIL
    ledger = Ledger()
    ledger.customer("c2").email = "known@example.com"
    decision = one(purchase("e2", "c2", email=None), ledger=ledger)
    assert (decision.outcome, decision.email) == (Outcome.INVITED, "known@example.com")


def test_unsubscribed_customers_and_addresses_are_never_asked() -> None:
    ledger = Ledger()
    ledger.customer("c1").suppressed = True
    ledger.suppressed_emails.add("bounced@example.com")
    assert one(purchase("e1", "c1"), ledger=ledger).reason is Reason.UNSUBSCRIBED
    assert one(purchase("e2", "c2", email="Bounced@Example.com"), ledger=ledger).reason is Reason.UNSUBSCRIBED


def test_the_same_order_is_decided_once_and_a_cancelled_one_not_at_all() -> None:
    ledger = Ledger()
    first = one(purchase("e1", "c1", order="1001"), ledger=ledger)
    retried = one(purchase("e2", "c9", order="1001"), ledger=ledger)
    assert first.outcome is Outcome.INVITED
    assert (retried.outcome, retried.reason) == (Outcome.SKIPPED, Reason.DUPLICATE)
    ledger.cancelled_sources.add("order:2002")
    assert one(purchase("e3", "c3", order="2002"), ledger=ledger).reason is Reason.CANCELLED


def test_test_orders_and_failing_filters_are_filtered_with_the_reason() -> None:
    paid_only = TouchpointRule(
        name="webshop-purchase",
        version=2,
        event_types=frozenset({PURCHASE_COMPLETED}),
        filters=(Filter("status", "in", ["paid", "fulfilled"]),),
    )
    test_order = one(purchase("e1", "c1", test=True, status="paid"), [paid_only])
    pending = one(purchase("e2", "c2", status="pending"), [paid_only])
    paid = one(purchase("e3", "c3", status="PAID"), [paid_only])
    assert (test_order.reason, test_order.detail) == (Reason.FILTERED, "test event")
    assert (pending.reason, pending.detail) == (
        Reason.FILTERED,
        "filter status in ['paid', 'fulfilled'] not met",
    )
    assert paid.outcome is Outcome.INVITED


def test_an_event_no_touchpoint_takes_is_filtered() -> None:
    ticket = Candidate(
        event_id="t1", event_type=TICKET_CLOSED, customer_id="c1", email="a@b.example", source_ref="ticket:1"
    )
    only_purchases = [DEFAULT_TOUCHPOINTS[0]]
    decision = one(ticket, only_purchases)
    assert (decision.reason, decision.touchpoint) == (Reason.FILTERED, None)


def test_touchpoints_are_tried_by_priority() -> None:
    vip = TouchpointRule(
        name="vip",
        version=1,
        event_types=frozenset({PURCHASE_COMPLETED}),
        priority=1,
        filters=(Filter("tier", "eq", "gold"),),
    )
    everyone = TouchpointRule(name="everyone", version=1, event_types=frozenset({PURCHASE_COMPLETED}))
    assert one(purchase("e1", "c1", tier="gold"), [everyone, vip]).touchpoint.name == "vip"
    assert one(purchase("e2", "c2", tier="silver"), [everyone, vip]).touchpoint.name == "everyone"


@pytest.mark.parametrize(
    ("rule", "value", "matches"),
    [
        (Filter("status", "eq", "paid"), {"status": "Paid"}, True),
        (Filter("status", "ne", "test"), {}, True),
        (Filter("status", "not_in", ["cancelled"]), {"status": "cancelled"}, False),
        (Filter("customer.country", "in", ["DK", "SE"]), {"customer": {"country": "SE"}}, True),
        (Filter("lines.0.sku", "exists"), {"lines": [{"sku": "A"}]}, True),
        (Filter("coupon", "missing"), {"coupon": None}, True),
        (Filter("amount", "eq", 10), {"amount": 10}, True),
    ],
)
def test_filters(rule: Filter, value: dict[str, Any], matches: bool) -> None:
    assert rule.matches(value) is matches


WEEKDAYS_8_TO_20 = SendWindow(
    days=frozenset(range(5)), start=time(8), end=time(20), time_zone="Europe/Copenhagen"
)


def test_a_delay_and_a_send_window_in_the_customers_time_zone() -> None:
    touchpoint = TouchpointRule(
        name="delivery",
        version=1,
        event_types=frozenset({PURCHASE_COMPLETED}),
        delay=timedelta(days=3),
        send_window=WEEKDAYS_8_TO_20,
    )
    # Monday 12:00 UTC + 3 days = Thursday 12:00 UTC = 13:00 in Copenhagen: inside the window.
    assert one(purchase("e1", "c1"), [touchpoint]).send_at == NOW + timedelta(days=3)
    friday_night = datetime(2026, 11, 27, 21, 30, tzinfo=UTC)
    decision = one(
        purchase("e2", "c2"),
        [touchpoint.__class__(**{**_fields(touchpoint), "delay": timedelta(0)})],
        now=friday_night,
    )
    assert decision.outcome is Outcome.DELAYED
    assert decision.send_at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 08:00 Copenhagen (UTC+1)


def _fields(rule: TouchpointRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in rule.__dataclass_fields__}


def test_the_window_uses_the_customers_own_zone_first() -> None:
    early = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # Tuesday 07:00 in Copenhagen, 01:00 in New York
    assert next_send_time(early, WEEKDAYS_8_TO_20, None) == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert next_send_time(early, WEEKDAYS_8_TO_20, "America/New_York") == datetime(
        2026, 11, 24, 13, 0, tzinfo=UTC
    )
    assert next_send_time(early, None, "Europe/Copenhagen") == early


@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["Europe/Copenhagen", "America/Los_Angeles", "Asia/Tokyo", "UTC", None]),
)
def test_the_send_time_is_never_early_and_always_inside_the_window(
    earliest: datetime, zone: str | None
) -> None:
    from zoneinfo import ZoneInfo

    sent = next_send_time(earliest, WEEKDAYS_8_TO_20, zone)
    local = sent.astimezone(ZoneInfo(zone or "Europe/Copenhagen"))
    assert sent >= earliest
    assert sent - earliest < timedelta(days=4)
    assert local.weekday() < 5 and time(8) <= local.time() < time(20)


def test_sampling_is_stable_per_customer_and_close_to_the_percentage() -> None:
    cycle = cycle_of(NOW, "month")
    picks = [sampled_in(TENANT, "relationship", f"c{i}", cycle, 10) for i in range(20_000)]
    assert picks == [sampled_in(TENANT, "relationship", f"c{i}", cycle, 10) for i in range(20_000)]
    assert 0.09 < sum(picks) / len(picks) < 0.11
    next_cycle = cycle_of(NOW + timedelta(days=31), "month")
    again = [sampled_in(TENANT, "relationship", f"c{i}", next_cycle, 10) for i in range(20_000)]
    assert picks != again  # drawn afresh each cycle


def test_sampled_out_and_quota_are_recorded() -> None:
    sampled = TouchpointRule(
        name="s", version=1, event_types=frozenset({PURCHASE_COMPLETED}), sample_percent=50
    )
    outcomes = {one(purchase(f"e{i}", f"c{i}"), [sampled]).reason for i in range(50)}
    assert outcomes == {None, Reason.SAMPLED_OUT}
    capped = TouchpointRule(name="q", version=1, event_types=frozenset({PURCHASE_COMPLETED}), daily_quota=2)
    decisions = decide(
        [purchase(f"e{i}", f"c{i}") for i in range(3)], [capped], Ledger(), POLICY, NOW, tenant_id=TENANT
    )
    assert [d.reason for d in decisions] == [None, None, Reason.QUOTA]


arrivals = st.lists(
    st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.integers(min_value=0, max_value=400)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150)
@given(arrivals, st.integers(min_value=1, max_value=365))
def test_nobody_is_invited_twice_inside_the_rest_period_whatever_the_order(
    events: list[tuple[str, int]], rest_days: int
) -> None:
    policy = Policy(rest_period=timedelta(days=rest_days))
    ledger = Ledger()
    invitations: dict[str, list[datetime]] = {}
    for index, (customer, day) in enumerate(sorted(events, key=lambda e: e[1])):
        now = NOW + timedelta(days=day)
        decision = one(purchase(f"e{index}", customer), ledger=ledger, policy=policy, now=now)
        if decision.invited:
            invitations.setdefault(customer, []).append(now)
    for times in invitations.values():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= policy.rest_period


@given(arrivals)
def test_one_batch_decides_as_the_same_events_one_at_a_time(events: list[tuple[str, int]]) -> None:
    candidates = [purchase(f"e{i}", customer, order=str(i % 7)) for i, (customer, _) in enumerate(events)]
    together = decide(candidates, DEFAULT_TOUCHPOINTS, Ledger(), POLICY, NOW, tenant_id=TENANT)
    ledger = Ledger()
    alone = [one(candidate, ledger=ledger) for candidate in candidates]
    assert [(d.outcome, d.reason) for d in together] == [(d.outcome, d.reason) for d in alone]


# Each step: a purchase by a customer, or a closure (answer, expiry) of some invitation, a day later.
steps = st.lists(
    st.tuples(
        st.sampled_from(["purchase", "answer", "expire", "close-other"]),
        st.sampled_from(["c1", "c2"]),
        st.integers(min_value=0, max_value=60),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150)
@given(steps, st.integers(min_value=0, max_value=90))
def test_under_the_response_clock_nobody_has_two_invitations_outstanding(
    events: list[tuple[str, str, int]], rest_days: int
) -> None:
    """Whatever the purchases and closures, a customer is invited again only after their
    previous invitation was closed, and only once the rest period since their last answer (or,
    never having answered, their last invitation) has passed."""
    policy = Policy(rest_period=timedelta(days=rest_days), clock="response")
    ledger = Ledger()
    now = NOW
    for index, (kind, customer_id, days_later) in enumerate(events):
        now += timedelta(days=days_later)
        customer = ledger.customer(customer_id)
        if kind == "purchase":
            before = (customer.outstanding_invitation, customer.last_responded_at, customer.last_invited_at)
            decision = one(
                purchase(f"e{index}", customer_id, invitation_id=f"inv-{index}"),
                ledger=ledger,
                policy=policy,
                now=now,
            )
            if decision.invited:
                outstanding, responded, invited = before
                assert outstanding is None
                since = responded or invited
                assert since is None or now - since >= policy.rest_period
                assert customer.outstanding_invitation == f"inv-{index}"
            else:
                assert customer.outstanding_invitation == before[0]
        elif kind == "answer" and customer.outstanding_invitation is not None:
            customer.outstanding_invitation = None
            customer.last_responded_at = now
        elif kind == "expire":
            customer.outstanding_invitation = None


def test_the_first_touchpoint_of_one_type_warns_that_the_built_in_ones_no_longer_apply() -> None:
    purchases = TouchpointRule(name="delivery", version=1, event_types=frozenset({PURCHASE_COMPLETED}))
    tickets = TouchpointRule(name="support", version=1, event_types=frozenset({TICKET_CLOSED}))
    cohort = TouchpointRule(name="b2b", version=1, event_types=frozenset({"relationship.due.v1"}))
    assert coverage_warnings([purchases], replaced=DEFAULT_TOUCHPOINTS) == [
        "the built-in touchpoints webshop-purchase and support-ticket no longer apply: "
        "ticket.closed.v1 is taken by no touchpoint now"
    ]
    assert coverage_warnings([purchases]) == ["ticket.closed.v1 is taken by no touchpoint now"]
    assert coverage_warnings([cohort]) == [
        "purchase.completed.v1 and ticket.closed.v1 are taken by no touchpoint now"
    ]
    assert coverage_warnings([purchases, tickets], replaced=DEFAULT_TOUCHPOINTS) == []
