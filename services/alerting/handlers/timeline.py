"""The case's timeline and clock as handlers keep them: what a new case records about its opening
and routing, the SLA times it starts with, and the entries every later change appends."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from libs.common.db import UnitOfWork
from services.alerting.domain.policy import DeskPolicy
from services.alerting.domain.routing import CaseFacts
from services.alerting.domain.sla import Clock, ClockState, Priority, Step, clock, due_steps, priority_of
from services.alerting.handlers.routing import Placement
from services.alerting.models import CaseEvent, FollowupCase
from services.alerting.repository import AlertingRepository

SYSTEM = "system"


def routing_facts(
    touchpoint: str,
    score: int,
    attributes: Mapping[str, str] | None = None,
    account_owner_email: str | None = None,
) -> CaseFacts:
    return CaseFacts(
        touchpoint=touchpoint,
        score=score,
        attributes=dict(attributes or {}),
        account_owner_email=account_owner_email,
    )


def place(
    case: FollowupCase,
    placement: Placement,
    priority: Priority,
    times: Clock,
    policy: DeskPolicy,
    now: datetime,
) -> None:
    """Put a new case where routing placed it, on its SLA clock."""
    routed = placement.routed
    case.priority = priority.value
    case.assignee_user_id = routed.assignee_user_id
    case.assignee_name = placement.assignee_name
    case.team_id = routed.team_id
    case.team_name = placement.team_name
    case.routing_rule_id = routed.rule_id
    case.routing_reason = routed.reason
    case.due_at = times.first_contact_due
    case.resolution_due_at = times.resolution_due
    case.sla_done = []
    case.next_check_at = next_check(case, policy, now)


def clock_state(case: FollowupCase) -> ClockState:
    """The case as the SLA clock sees it. A reopened case's clock runs from its reopening."""
    return ClockState(
        opened_at=case.reopened_at or case.opened_at,
        # Cases opened before priorities existed have none: the score tells it.
        priority=Priority(case.priority) if case.priority else priority_of(case.score),
        contacted_at=case.contacted_at,
        resolved_at=case.resolved_at,
        done=frozenset(Step(step) for step in case.sla_done or ()),
    )


def next_check(case: FollowupCase, policy: DeskPolicy, now: datetime) -> datetime | None:
    """When the SLA job must next look at the case: now if a step is due already (an answer heard of
    late), else the next step's time, or never."""
    due = due_steps(clock_state(case), policy.sla, now)
    return now if due.steps else due.next_check_at


def entry(
    case: FollowupCase,
    kind: str,
    at: datetime,
    *,
    body: str | None = None,
    actor: str = SYSTEM,
    actor_user_id: uuid.UUID | None = None,
    data: Mapping[str, object] | None = None,
    dedup_key: str | None = None,
) -> CaseEvent:
    """One line of a case's timeline."""
    return CaseEvent(
        tenant_id=case.tenant_id,
        case_id=case.id,
        at=at,
        kind=kind,
        actor=actor,
        actor_user_id=actor_user_id,
        body=body,
        data=dict(data or {}),
        dedup_key=dedup_key,
    )


def opening_timeline(case: FollowupCase, placement: Placement) -> list[CaseEvent]:
    """A new case's first lines: it opened (when the customer answered), and where it was routed."""
    routed = placement.routed
    opened = entry(
        case,
        "opened",
        case.opened_at,
        data={"score": case.score, "priority": case.priority, "due_at": case.due_at.isoformat()},
        dedup_key="opened",
    )
    routed_entry = entry(
        case,
        "routed",
        case.opened_at,
        body=routed.reason,
        data={
            "rule_id": str(routed.rule_id) if routed.rule_id else None,
            "rule_name": routed.rule_name,
            "assignee": placement.assignee_name,
            "team": placement.team_name,
        },
        dedup_key="routed",
    )
    return [opened, routed_entry]


def after_change(case: FollowupCase, policy: DeskPolicy, now: datetime) -> None:
    """Keep the clock and the recovery survey in step with a change of the case: a contact ends the
    first-contact steps, a resolution stops the clock and, when somebody handled it, books the
    recovery survey; reopening cancels a survey not asked yet."""
    if case.status == "resolved":
        case.next_check_at = None
        after = policy.recovery_after()
        handled = case.resolution == "handled" and case.resolved_at is not None
        if handled and after is not None and case.customer_email and case.resolved_at is not None:
            case.recovery_due_at = case.resolved_at + after
        return
    case.next_check_at = next_check(case, policy, now)
    if case.recovery_requested_at is None:
        case.recovery_due_at = None


async def restart_clock(uow: UnitOfWork[AlertingRepository], case: FollowupCase, start: datetime) -> Clock:
    """A reopened case runs on a fresh SLA clock from ``start``: new due times, every step may be
    taken again, and a recovery survey not asked yet is off. An earlier breach stays on its timeline."""
    policy = await uow.repository.desk_policy(case.tenant_id)
    case.reopened_at = start
    times = clock(start, Priority(case.priority) if case.priority else priority_of(case.score), policy.sla)
    case.due_at = times.first_contact_due
    case.resolution_due_at = times.resolution_due
    case.sla_done = []
    case.breached_at = None
    case.resolution_breached_at = None
    if case.recovery_requested_at is None:
        case.recovery_due_at = None
    case.next_check_at = next_check(case, policy, start)
    return times
