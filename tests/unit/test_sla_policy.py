"""The follow-up SLA: priorities, the clock of a case, and which step the SLA job takes when."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerting.domain.business_hours import ALWAYS_OPEN, DEFAULT_HOURS, BusinessHours
from services.alerting.domain.sla import (
    DEFAULT_POLICY,
    Clock,
    ClockState,
    Due,
    Priority,
    SlaPolicy,
    Step,
    Targets,
    business_time_to,
    clock,
    due_steps,
    priority_of,
    within_first_contact,
)

H = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
DANISH_OFFICE = BusinessHours("Europe/Copenhagen", frozenset(range(5)), time(9), time(17), "DK")


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of Monday 30 November 2026 (days from 30 to 36 run on into December)."""
    return datetime(2026, 11, 30, hour, minute, tzinfo=UTC) + timedelta(days=day - 30)


MONDAY_NINE = utc(30, 9)


# --- Priorities and policies ---------------------------------------------------------------------------


@pytest.mark.parametrize("score", range(5))
def test_scores_zero_to_four_are_urgent(score: int) -> None:
    assert priority_of(score) is Priority.URGENT


@pytest.mark.parametrize("score", [5, 6])
def test_scores_five_and_six_are_normal(score: int) -> None:
    assert priority_of(score) is Priority.NORMAL


@pytest.mark.parametrize("score", [7, 8, 9, 10])
def test_passives_and_promoters_have_no_priority(score: int) -> None:
    with pytest.raises(ValueError, match="not a detractor"):
        priority_of(score)


@pytest.mark.parametrize("score", [-1, 11])
def test_a_score_outside_the_scale_has_no_priority(score: int) -> None:
    with pytest.raises(ValueError, match="0-10"):
        priority_of(score)


def test_the_default_policy_counts_in_the_default_business_hours() -> None:
    assert DEFAULT_POLICY.hours == DEFAULT_HOURS
    assert DEFAULT_POLICY.targets[Priority.NORMAL] == Targets(first_contact=24 * H, resolution=40 * H)
    assert DEFAULT_POLICY.targets[Priority.URGENT] == Targets(first_contact=4 * H, resolution=16 * H)
    assert DEFAULT_POLICY.reminder_fraction == 0.75
    assert DEFAULT_POLICY.escalation_repeat == 4 * H


@pytest.mark.parametrize(
    ("first_contact", "resolution", "message"),
    [
        (timedelta(0), H, "must be positive"),
        (H, -H, "must be positive"),
        (2 * H, H, "cannot be shorter"),
    ],
)
def test_targets_that_make_no_sense_are_refused(
    first_contact: timedelta, resolution: timedelta, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Targets(first_contact, resolution)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SlaPolicy(targets={Priority.NORMAL: Targets(H, H)}), "missing: urgent"),
        (lambda: replace(DEFAULT_POLICY, reminder_fraction=0.0), "between 0 and 1"),
        (lambda: replace(DEFAULT_POLICY, reminder_fraction=1.0), "between 0 and 1"),
        (lambda: replace(DEFAULT_POLICY, escalation_repeat=timedelta(0)), "must be positive"),
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(build: Callable[[], SlaPolicy], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_policy_keeps_its_own_targets() -> None:
    targets = {Priority.URGENT: Targets(H, H), Priority.NORMAL: Targets(H, 2 * H)}
    policy = SlaPolicy(targets=targets)
    targets[Priority.URGENT] = Targets(10 * H, 10 * H)
    assert policy.targets[Priority.URGENT] == Targets(H, H)


# --- The clock -----------------------------------------------------------------------------------------


def test_a_normal_case_opened_monday_morning() -> None:
    # 24 business hours are three 8-hour days; 40 are five.
    assert clock(MONDAY_NINE, Priority.NORMAL, DEFAULT_POLICY) == Clock(
        first_contact_due=utc(32, 17),  # Wednesday 17:00
        reminder_at=utc(32, 11),  # 18 business hours
        resolution_due=utc(34, 17),  # Friday 17:00
        resolution_reminder_at=utc(33, 15),  # 30 business hours
        cx_manager_at=utc(33, 13),  # 4 business hours after the due time
    )


def test_an_urgent_case_opened_monday_morning() -> None:
    assert clock(MONDAY_NINE, Priority.URGENT, DEFAULT_POLICY) == Clock(
        first_contact_due=utc(30, 13),
        reminder_at=utc(30, 12),
        resolution_due=utc(31, 17),
        resolution_reminder_at=utc(31, 13),
        cx_manager_at=utc(30, 17),
    )


def test_a_case_opened_at_the_weekend_starts_its_clock_monday_morning() -> None:
    saturday_night = utc(28, 20)
    assert clock(saturday_night, Priority.URGENT, DEFAULT_POLICY).first_contact_due == utc(30, 13)


def test_an_urgent_case_opened_on_christmas_eve_in_denmark_is_due_after_christmas_day() -> None:
    policy = replace(DEFAULT_POLICY, hours=DANISH_OFFICE)
    christmas_eve = datetime(2026, 12, 24, 15, tzinfo=COPENHAGEN)
    times = clock(christmas_eve, Priority.URGENT, policy)
    # 15-17 on Thursday, Friday the 25th is a holiday, then 09-11 on Monday.
    assert times.first_contact_due == datetime(2026, 12, 28, 11, tzinfo=COPENHAGEN)
    assert times.cx_manager_at == datetime(2026, 12, 28, 15, tzinfo=COPENHAGEN)


def test_always_open_makes_the_targets_wall_clock_time() -> None:
    policy = replace(DEFAULT_POLICY, hours=ALWAYS_OPEN)
    saturday = utc(28, 20)
    assert clock(saturday, Priority.NORMAL, policy).first_contact_due == saturday + 24 * H


# --- Which steps are due when --------------------------------------------------------------------------


def opened_monday(
    priority: Priority = Priority.URGENT,
    contacted_at: datetime | None = None,
    resolved_at: datetime | None = None,
    done: frozenset[Step] = frozenset(),
) -> ClockState:
    return ClockState(MONDAY_NINE, priority, contacted_at=contacted_at, resolved_at=resolved_at, done=done)


def take(state: ClockState, now: datetime, policy: SlaPolicy = DEFAULT_POLICY) -> tuple[Due, ClockState]:
    """What the SLA job does: the steps due now, recorded as done."""
    due = due_steps(state, policy, now)
    return due, replace(state, done=state.done | frozenset(due.steps))


def test_an_untouched_urgent_case_goes_through_every_step_in_order() -> None:
    state = opened_monday()
    expected = [
        (utc(30, 11, 59), (), utc(30, 12)),
        (utc(30, 12), (Step.REMINDER,), utc(30, 13) + MICROSECOND),
        # The due instant itself is still in time.
        (utc(30, 13), (), utc(30, 13) + MICROSECOND),
        (utc(30, 13) + MICROSECOND, (Step.BREACH, Step.ESCALATE_TEAM_LEAD), utc(30, 17)),
        (utc(30, 17), (Step.ESCALATE_CX_MANAGER,), utc(31, 13)),
        (utc(31, 13), (Step.RESOLUTION_REMINDER,), utc(31, 17) + MICROSECOND),
        (utc(31, 17, 1), (Step.RESOLUTION_BREACH,), None),
        (utc(36, 9), (), None),
    ]
    for now, steps, next_check_at in expected:
        due, state = take(state, now)
        assert due == Due(steps=steps, next_check_at=next_check_at), now


def test_a_job_that_was_down_takes_the_missed_steps_at_once_but_not_the_stale_reminders() -> None:
    due = due_steps(opened_monday(), DEFAULT_POLICY, utc(31, 18))
    assert due == Due(
        steps=(Step.BREACH, Step.ESCALATE_TEAM_LEAD, Step.ESCALATE_CX_MANAGER, Step.RESOLUTION_BREACH),
        next_check_at=None,
    )


def test_a_normal_case_breaches_later_than_an_urgent_one() -> None:
    monday_two = utc(30, 14)
    assert due_steps(opened_monday(Priority.URGENT), DEFAULT_POLICY, monday_two).steps == (
        Step.BREACH,
        Step.ESCALATE_TEAM_LEAD,
    )
    normal = due_steps(opened_monday(Priority.NORMAL), DEFAULT_POLICY, monday_two)
    assert normal == Due(steps=(), next_check_at=utc(32, 11))


def test_a_contact_in_time_stops_the_reminder_and_the_escalations() -> None:
    contacted = opened_monday(contacted_at=utc(30, 12, 30), done=frozenset({Step.REMINDER}))
    due = due_steps(contacted, DEFAULT_POLICY, utc(30, 18))
    assert due == Due(steps=(), next_check_at=utc(31, 13))
    assert within_first_contact(MONDAY_NINE, utc(30, 12, 30), Priority.URGENT, DEFAULT_POLICY)


def test_a_contact_before_the_reminder_skips_it() -> None:
    contacted = opened_monday(contacted_at=utc(30, 10))
    assert due_steps(contacted, DEFAULT_POLICY, utc(30, 12)) == Due(steps=(), next_check_at=utc(31, 13))


def test_a_contact_after_the_due_time_is_still_a_breach_but_is_not_escalated() -> None:
    late = opened_monday(contacted_at=utc(30, 14))
    assert due_steps(late, DEFAULT_POLICY, utc(30, 15)) == Due(
        steps=(Step.BREACH,), next_check_at=utc(31, 13)
    )
    assert not within_first_contact(MONDAY_NINE, utc(30, 14), Priority.URGENT, DEFAULT_POLICY)


def test_a_breach_already_taken_stays_taken_after_the_contact_and_no_escalation_follows() -> None:
    done = frozenset({Step.REMINDER, Step.BREACH, Step.ESCALATE_TEAM_LEAD})
    contacted = opened_monday(contacted_at=utc(30, 15), done=done)
    assert due_steps(contacted, DEFAULT_POLICY, utc(30, 17)) == Due(steps=(), next_check_at=utc(31, 13))


def test_nothing_happens_to_a_resolved_case() -> None:
    resolved = opened_monday(resolved_at=utc(30, 10))
    assert due_steps(resolved, DEFAULT_POLICY, utc(36, 9)) == Due(steps=(), next_check_at=None)
    resolved_late = opened_monday(contacted_at=utc(30, 14), resolved_at=utc(30, 16))
    assert due_steps(resolved_late, DEFAULT_POLICY, utc(30, 17)) == Due(steps=(), next_check_at=None)


def test_the_resolution_steps_run_for_a_contacted_case_until_it_is_resolved() -> None:
    contacted = opened_monday(contacted_at=utc(30, 10))
    assert due_steps(contacted, DEFAULT_POLICY, utc(31, 17, 1)).steps == (Step.RESOLUTION_BREACH,)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_steps(opened_monday(), DEFAULT_POLICY, datetime(2026, 11, 30, 12))


def test_the_first_contact_due_instant_is_in_time() -> None:
    due = clock(MONDAY_NINE, Priority.URGENT, DEFAULT_POLICY).first_contact_due
    assert within_first_contact(MONDAY_NINE, due, Priority.URGENT, DEFAULT_POLICY)
    assert not within_first_contact(MONDAY_NINE, due + MICROSECOND, Priority.URGENT, DEFAULT_POLICY)


def test_business_time_to_the_first_contact() -> None:
    friday_four = utc(27, 16)
    assert business_time_to(friday_four, utc(30, 10), DEFAULT_POLICY) == 2 * H
    assert business_time_to(friday_four, utc(30, 10), replace(DEFAULT_POLICY, hours=ALWAYS_OPEN)) == 66 * H


# --- Properties ----------------------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> SlaPolicy:
    def targets() -> Targets:
        first_contact = draw(st.timedeltas(timedelta(minutes=1), timedelta(hours=40)))
        return Targets(first_contact, first_contact + draw(st.timedeltas(timedelta(0), timedelta(hours=80))))

    return SlaPolicy(
        targets={Priority.URGENT: targets(), Priority.NORMAL: targets()},
        reminder_fraction=draw(st.floats(0.05, 0.95)),
        escalation_repeat=draw(st.timedeltas(timedelta(minutes=1), timedelta(hours=10))),
        hours=draw(st.sampled_from([DEFAULT_HOURS, ALWAYS_OPEN, DANISH_OFFICE])),
    )


openings = st.datetimes(
    datetime(2024, 1, 1), datetime(2030, 12, 31), timezones=st.sampled_from([UTC, COPENHAGEN])
)
priorities = st.sampled_from(list(Priority))


def run_job(state: ClockState, policy: SlaPolicy) -> list[tuple[datetime, Step]]:
    """A job that looks at the case only at its ``next_check_at``, from the moment it opened."""
    taken: list[tuple[datetime, Step]] = []
    check_at: datetime | None = state.opened_at
    while check_at is not None:
        due = due_steps(state, policy, check_at)
        taken += [(check_at, step) for step in due.steps]
        state = replace(state, done=state.done | frozenset(due.steps))
        assert due.next_check_at is None or due.next_check_at > check_at
        check_at = due.next_check_at
    return taken


@settings(deadline=None)
@given(policy=policies(), opened_at=openings, priority=priorities)
def test_a_job_waking_only_at_next_check_takes_every_step_of_an_untouched_case_once_on_time(
    policy: SlaPolicy, opened_at: datetime, priority: Priority
) -> None:
    taken = run_job(ClockState(opened_at=opened_at, priority=priority), policy)
    times = clock(opened_at, priority, policy)
    assert dict((step, at) for at, step in taken) == {
        Step.REMINDER: times.reminder_at,
        Step.BREACH: times.first_contact_due + MICROSECOND,
        Step.ESCALATE_TEAM_LEAD: times.first_contact_due + MICROSECOND,
        Step.ESCALATE_CX_MANAGER: times.cx_manager_at,
        Step.RESOLUTION_REMINDER: times.resolution_reminder_at,
        Step.RESOLUTION_BREACH: times.resolution_due + MICROSECOND,
    }
    assert len(taken) == len(Step)
    assert [at for at, _ in taken] == sorted(at for at, _ in taken)


@settings(deadline=None)
@given(
    policy=policies(),
    opened_at=openings,
    priority=priorities,
    contact_after=st.none() | st.timedeltas(timedelta(0), timedelta(days=20)),
    done=st.frozensets(st.sampled_from(list(Step))),
    wait=st.timedeltas(timedelta(0), timedelta(days=30)),
)
def test_at_the_next_check_something_is_due(
    policy: SlaPolicy,
    opened_at: datetime,
    priority: Priority,
    contact_after: timedelta | None,
    done: frozenset[Step],
    wait: timedelta,
) -> None:
    contacted_at = None if contact_after is None else opened_at + contact_after
    state = ClockState(opened_at=opened_at, priority=priority, contacted_at=contacted_at, done=done)
    now = opened_at.astimezone(UTC) + wait
    due, state = take(state, now, policy)
    if due.next_check_at is not None:
        assert due.next_check_at > now
        assert due_steps(state, policy, due.next_check_at).steps != ()
    for step in due.steps:
        assert step not in done


@settings(deadline=None)
@given(
    policy=policies(),
    opened_at=openings,
    priority=priorities,
    contact_after=st.timedeltas(timedelta(0), timedelta(days=20)),
)
def test_a_contacted_case_breaches_exactly_when_the_contact_was_late_and_is_never_escalated(
    policy: SlaPolicy, opened_at: datetime, priority: Priority, contact_after: timedelta
) -> None:
    contacted_at = opened_at.astimezone(UTC) + contact_after
    state = ClockState(opened_at=opened_at, priority=priority, contacted_at=contacted_at)
    steps = set(due_steps(state, policy, contacted_at + timedelta(days=400)).steps)
    in_time = within_first_contact(opened_at, contacted_at, priority, policy)
    assert (Step.BREACH in steps) == (not in_time)
    assert steps.isdisjoint({Step.REMINDER, Step.ESCALATE_TEAM_LEAD, Step.ESCALATE_CX_MANAGER})
    assert Step.RESOLUTION_BREACH in steps
