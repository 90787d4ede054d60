"""The funnel's daily rollup: how a range splits into whole UTC days and partial edges, and how
batches of facts, repeated and in any order, keep the rollup equal to counting the facts."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.funnel_days import (
    FAILED_BY_REASON,
    MACHINE_OPENED,
    OPENED,
    DayPlan,
    Edge,
    FunnelCounts,
    NewStep,
    RollupKey,
    plan_funnel_days,
    rollup_changes,
    utc_day,
)

BASE = datetime(2025, 3, 1, tzinfo=UTC)
#: Moments within ten days of BASE, on whole hours or not: midnights come up often enough.
moments = st.one_of(
    st.integers(0, 240).map(lambda hours: BASE + timedelta(hours=hours)),
    st.integers(0, 240 * 3600 * 10**6).map(lambda micros: BASE + timedelta(microseconds=micros)),
)
bounds = st.one_of(st.none(), moments)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def parts_holding(plan: DayPlan, moment: datetime) -> int:
    held = sum(edge.since <= moment and (edge.until is None or moment < edge.until) for edge in plan.edges)
    days = plan.days
    if days is not None:
        after_first = days.first is None or moment >= midnight(days.first)
        before_stop = days.stop is None or moment < midnight(days.stop)
        held += after_first and before_stop
    return held


def in_range(since: datetime | None, until: datetime | None, moment: datetime) -> bool:
    return (since is None or moment >= since) and (until is None or moment < until)


@given(bounds, bounds, st.lists(moments, max_size=20))
def test_every_moment_of_the_range_is_in_exactly_one_part_and_no_other_is(
    since: datetime | None, until: datetime | None, probes: list[datetime]
) -> None:
    plan = plan_funnel_days(since, until)
    edges_of = [moment for moment in (since, until) if moment is not None]
    around = [m + delta for m in edges_of for delta in (timedelta(0), timedelta(microseconds=-1))]
    for moment in [*probes, *around, *(midnight(utc_day(m)) for m in edges_of)]:
        assert parts_holding(plan, moment) == int(in_range(since, until, moment)), moment


@given(bounds, bounds)
def test_the_facts_are_read_for_at_most_two_partial_days(
    since: datetime | None, until: datetime | None
) -> None:
    plan = plan_funnel_days(since, until)
    assert len(plan.edges) <= 2
    for edge in plan.edges:
        assert edge.until is not None and edge.since < edge.until
        # Within two adjacent UTC days, and under one day beside whole days.
        assert (utc_day(edge.until - timedelta(microseconds=1)) - utc_day(edge.since)).days <= 1
        assert edge.until - edge.since < timedelta(days=2 if plan.days is None else 1)
    if plan.days is not None and plan.days.first is not None and plan.days.stop is not None:
        assert plan.days.first < plan.days.stop


def test_a_range_of_whole_days_reads_the_rollup_only() -> None:
    plan = plan_funnel_days(BASE, BASE + timedelta(days=3))
    assert plan.edges == ()
    assert plan.days is not None
    assert (plan.days.first, plan.days.stop) == (date(2025, 3, 1), date(2025, 3, 4))
    assert plan_funnel_days(None, None).edges == ()


def test_a_since_on_the_last_day_there_is_reads_the_facts_from_then_on() -> None:
    since = datetime(9999, 12, 31, 10, tzinfo=UTC)
    assert plan_funnel_days(since, None) == DayPlan(None, (Edge(since, None),))
    assert parts_holding(plan_funnel_days(since, None), since + timedelta(hours=1)) == 1


TENANTS = [uuid.UUID(int=1), uuid.UUID(int=2)]
INVITATIONS = [uuid.UUID(int=10 + n) for n in range(4)]
STEPS = [OPENED, MACHINE_OPENED, "clicked", "failed"]
#: (tenant, invitation, step, hours after BASE, touchpoint)
facts = st.tuples(
    st.sampled_from(TENANTS),
    st.sampled_from(INVITATIONS),
    st.sampled_from(["sent", *STEPS, FAILED_BY_REASON]),
    st.integers(0, 72),
    st.sampled_from(["checkout", "support"]),
)
Fact = tuple[uuid.UUID, uuid.UUID, str, int, str]


def project(stored: dict[tuple[uuid.UUID, uuid.UUID, str], Fact], batch: list[Fact]) -> dict[RollupKey, int]:
    """What the projection does with one batch: first seen per key, insert the new, roll them up."""
    new: dict[tuple[uuid.UUID, uuid.UUID, str], Fact] = {}
    for fact in batch:
        key = fact[:3]
        if key not in stored and key not in new:
            new[key] = fact
    stored.update(new)
    at = {key: BASE + timedelta(hours=fact[3]) for key, fact in new.items()}
    steps = [
        NewStep(fact[0], fact[1], fact[4], fact[2], at[key]) for key, fact in new.items() if fact[2] in STEPS
    ]
    opens = {
        (s.tenant_id, s.invitation_id): {
            step: (stored[(s.tenant_id, s.invitation_id, step)][4], stored_at(stored, s, step))
            for step in (OPENED, MACHINE_OPENED)
            if (s.tenant_id, s.invitation_id, step) in stored
        }
        for s in steps
        if s.step in (OPENED, MACHINE_OPENED)
    }
    return rollup_changes(
        [(f[0], f[4], at[key]) for key, f in new.items() if f[2] == "sent"],
        steps,
        [(f[0], f[4], "refused", at[key]) for key, f in new.items() if f[2] == FAILED_BY_REASON],
        opens,
    )


def stored_at(stored: dict[tuple[uuid.UUID, uuid.UUID, str], Fact], step: NewStep, name: str) -> datetime:
    return BASE + timedelta(hours=stored[(step.tenant_id, step.invitation_id, name)][3])


def counted_from_the_facts(stored: dict[tuple[uuid.UUID, uuid.UUID, str], Fact]) -> Counter[RollupKey]:
    """The rollup as the summary's raw queries count it: a machine's open only where no person's is."""
    counts: Counter[RollupKey] = Counter()
    for tenant_id, invitation_id, step, hours, touchpoint in stored.values():
        if step == MACHINE_OPENED and (tenant_id, invitation_id, OPENED) in stored:
            continue
        reason = "refused" if step == FAILED_BY_REASON else ""
        counts[(tenant_id, touchpoint, utc_day(BASE + timedelta(hours=hours)), step, reason)] += 1
    return counts


@given(st.lists(st.lists(facts, max_size=8), max_size=8))
def test_batches_repeated_and_in_any_order_keep_the_rollup_equal_to_the_facts(
    batches: list[list[Fact]],
) -> None:
    stored: dict[tuple[uuid.UUID, uuid.UUID, str], Fact] = {}
    rollup: Counter[RollupKey] = Counter()
    # Every batch arrives twice: the repeat must change nothing.
    for batch in [batch for batch in batches for _ in range(2)]:
        for key, delta in project(stored, batch).items():
            rollup[key] += delta
    assert {key: n for key, n in rollup.items() if n} == dict(counted_from_the_facts(stored))
    assert all(n >= 0 for n in rollup.values())


def test_a_persons_open_takes_back_the_machines_open_counted_on_its_own_day() -> None:
    tenant, invitation = TENANTS[0], INVITATIONS[0]
    machine_at, person_at = BASE, BASE + timedelta(days=2)
    changes = rollup_changes(
        [],
        [NewStep(tenant, invitation, "checkout", OPENED, person_at)],
        [],
        {(tenant, invitation): {OPENED: ("checkout", person_at), MACHINE_OPENED: ("checkout", machine_at)}},
    )
    assert changes == {
        (tenant, "checkout", person_at.date(), OPENED, ""): 1,
        (tenant, "checkout", machine_at.date(), MACHINE_OPENED, ""): -1,
    }


def test_funnel_counts_drop_what_adds_up_to_nothing() -> None:
    funnel = FunnelCounts()
    funnel.add_step(MACHINE_OPENED, 1)
    funnel.add_step(MACHINE_OPENED, -1)
    funnel.add_failures("refused", 0)
    assert funnel.without_zeros().empty
    funnel.add_failures("expired", 2)
    assert funnel.without_zeros().failed_by_reason == {"expired": 2}
