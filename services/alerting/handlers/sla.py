"""The SLA clock: take each case's steps when they come due (the reminder before the first-contact
time runs out, the breach, the escalations to the team lead and then the CX manager, the resolution
reminder and breach), record each on the case's timeline, and queue who must hear of it.

One transaction per batch holds the case rows (SKIP LOCKED), the timeline lines, the notifications
and the outgoing events, and each step is recorded in ``sla_done`` and under a dedup key: a job
killed mid-batch leaves nothing taken, and one re-run after a crash takes nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from libs.common.db import UnitOfWork
from services.alerting.domain import notices
from services.alerting.domain.policy import DeskPolicy
from services.alerting.domain.sla import Due, Priority, Step, due_steps
from services.alerting.handlers.chat import DEFAULT_DESK_URL, chat_notices
from services.alerting.handlers.common import case_facts, emit_updated
from services.alerting.handlers.timeline import clock_state, entry
from services.alerting.models import CaseEvent, FollowupCase
from services.alerting.repository import AlertingRepository, CaseNotice, People

log = logging.getLogger(__name__)

CASES_BREACHED = Counter(
    "nps_alerting_cases_breached_total", "Follow-up cases not contacted by their due time"
)
SLA_STEPS = Counter("nps_alerting_sla_steps_total", "SLA clock steps taken, by step", ["step"])
OPEN_CASES = Gauge("nps_alerting_open_cases", "Cases nobody has contacted yet, as of the last SLA check")
# Per priority (urgent, normal: a CHECK constraint); no tenant label, so the series stay few.
UNRESOLVED_CASES = Gauge(
    "nps_alerting_cases_unresolved", "Cases not resolved yet, as of the last SLA check", ["priority"]
)
DUE_WITHIN_HOUR = Gauge(
    "nps_alerting_cases_due_within_hour",
    "Unresolved cases not breached whose first-contact or resolution deadline comes within the hour",
    ["priority"],
)
BREACHED_NOW = Gauge(
    "nps_alerting_cases_breached_now",
    "Unresolved cases past a deadline they did not meet (first contact, or resolution) right now",
    ["priority"],
)
SOON = timedelta(hours=1)

BREACH_BATCH = 1000


_ESCALATIONS = frozenset({Step.ESCALATE_TEAM_LEAD, Step.ESCALATE_CX_MANAGER})


@dataclass
class _Batch:
    desk_url: str
    entries: list[CaseEvent] = field(default_factory=list)
    queued: list[CaseNotice] = field(default_factory=list)
    #: Who escalations reach, of each tenant with one due in the batch.
    people: dict[uuid.UUID, People] = field(default_factory=dict)
    owner_emails: dict[uuid.UUID, str | None] = field(default_factory=dict)

    def tell(self, case: FollowupCase, notice: notices.Notice) -> None:
        self.queued.append(CaseNotice(case.tenant_id, case.id, notice))


async def run_clock(
    uow: UnitOfWork[AlertingRepository],
    now: datetime,
    *,
    limit: int = BREACH_BATCH,
    desk_url: str = DEFAULT_DESK_URL,
) -> int:
    """Take every step due by ``now`` on up to ``limit`` cases; the number of steps taken."""
    repository = uow.repository
    cases = await repository.clock_due(now, limit)
    policies = await repository.desk_policies({case.tenant_id for case in cases})
    dues = [(case, due_steps(clock_state(case), policies[case.tenant_id].sla, now)) for case in cases]
    batch = await _escalation_people(repository, dues, desk_url)
    taken = 0
    for case, due in dues:
        policy = policies[case.tenant_id]
        for step in due.steps:
            await _take(step, case, policy, uow, batch, now)
            uow.count(SLA_STEPS.labels(step=step.value))
        taken += len(due.steps)
        case.sla_done = [*(case.sla_done or []), *(step.value for step in due.steps)]
        case.next_check_at = due_steps(clock_state(case), policy.sla, now).next_check_at
    await repository.save_clock(cases)
    await repository.add_case_events(batch.entries)
    await repository.queue_notifications(batch.queued)
    if taken:
        log.info("followup.sla_steps", extra={"cases": len(cases), "steps": taken})
    return taken


async def _escalation_people(
    repository: AlertingRepository, dues: list[tuple[FollowupCase, Due]], desk_url: str
) -> _Batch:
    """The people and owner email of each tenant with an escalation due in the batch, looked up once
    per tenant, not per case, and before any case changes (each query would flush the changes so
    far, case by case)."""
    tenants = {case.tenant_id for case, due in dues if _ESCALATIONS.intersection(due.steps)}
    batch = _Batch(desk_url=desk_url, owner_emails=await repository.owner_emails(tenants))
    for tenant_id in tenants:
        batch.people[tenant_id] = await repository.people(tenant_id)
    return batch


async def _take(
    step: Step,
    case: FollowupCase,
    policy: DeskPolicy,
    uow: UnitOfWork[AlertingRepository],
    batch: _Batch,
    now: datetime,
) -> None:
    facts = case_facts(case, batch.desk_url)
    if step is Step.REMINDER:
        batch.entries.append(entry(case, "reminder", now, body=_told(case.owner_email), dedup_key=step.value))
        if case.owner_email:
            batch.tell(case, notices.sla_reminder(facts, case.owner_email))
    elif step is Step.BREACH:
        case.breached_at = now
        case.updated_at = now
        emit_updated(uow, case, "breached", now)
        uow.count(CASES_BREACHED)
        batch.entries.append(entry(case, "breached", now, body=_told(case.owner_email), dedup_key=step.value))
        if case.owner_email:
            batch.tell(case, notices.case_breached(facts, case.owner_email, now))
    elif step in (Step.ESCALATE_TEAM_LEAD, Step.ESCALATE_CX_MANAGER):
        _escalate(step, case, policy, batch, now)
    elif step is Step.RESOLUTION_REMINDER:
        batch.entries.append(
            entry(case, "resolution_reminder", now, body=_told(case.owner_email), dedup_key=step.value)
        )
        if case.owner_email and case.resolution_due_at is not None:
            batch.tell(case, notices.resolution_reminder(facts, case.owner_email, case.resolution_due_at))
    else:
        case.resolution_breached_at = now
        case.updated_at = now
        emit_updated(uow, case, "resolution_breached", now)
        batch.entries.append(entry(case, "resolution_breached", now, dedup_key=step.value))


def _escalate(step: Step, case: FollowupCase, policy: DeskPolicy, batch: _Batch, now: datetime) -> None:
    """Escalate to this tenant's people only: the case's team lead, then its CX managers."""
    people = batch.people[case.tenant_id]
    if step is Step.ESCALATE_TEAM_LEAD:
        level, recipients = notices.NoticeKind.ESCALATION_TEAM_LEAD, team_leads(case, people)
    else:
        level = notices.NoticeKind.ESCALATION_CX_MANAGER
        recipients = cx_managers(people, policy, batch.owner_emails.get(case.tenant_id))
    label = "team lead" if level is notices.NoticeKind.ESCALATION_TEAM_LEAD else "CX manager"
    body = f"escalated to the {label}: {', '.join(recipients)}" if recipients else f"no {label} to tell"
    batch.entries.append(
        entry(
            case, "escalated", now, body=body, data={"level": label, "to": recipients}, dedup_key=step.value
        )
    )
    for recipient in recipients:
        batch.tell(case, notices.escalation(case_facts(case, batch.desk_url), recipient, now, level=level))
    team = people.teams.get(case.team_id) if case.team_id else None
    title = f"Escalated to the {label}: detractor not contacted in time (score {case.score})"
    batch.queued.extend(chat_notices(case, team, level, title, batch.desk_url))
    if not recipients:
        log.warning("followup.escalation_unnotified", extra={"case_id": str(case.id), "escalation": label})


def team_leads(case: FollowupCase, people: People) -> list[str]:
    """The lead of the case's team, or of the owner's teams; active people only."""
    team_ids = [case.team_id] if case.team_id is not None else []
    if not team_ids and case.assignee_user_id is not None:
        team_ids = [team for team, user in people.members if user == case.assignee_user_id]
    leads: list[str] = []
    for team_id in team_ids:
        team = people.teams.get(team_id)
        lead = people.users.get(team.lead_user_id) if team is not None and team.lead_user_id else None
        if lead is not None and lead.active and lead.email not in leads:
            leads.append(lead.email)
    return leads


def cx_managers(people: People, policy: DeskPolicy, owner_email: str | None) -> list[str]:
    """The addresses the tenant named, else its active CX managers, else its owner email."""
    if policy.cx_manager_emails:
        return list(policy.cx_manager_emails)
    managers = sorted(
        user.email for user in people.users.values() if user.active and user.role == "cx_manager"
    )
    return managers or ([owner_email] if owner_email else [])


def _told(recipient: str | None) -> str:
    return f"told {recipient}" if recipient else "nobody to tell: the case has no owner"


async def refresh_open_cases(uow: UnitOfWork[AlertingRepository], now: datetime | None = None) -> int:
    count = await uow.repository.count_open_cases()
    OPEN_CASES.set(count)
    now = now or datetime.now(UTC)
    counts = {row.priority: row for row in await uow.repository.sla_counts(now, now + SOON)}
    for priority in Priority:
        row = counts.get(priority.value)
        UNRESOLVED_CASES.labels(priority.value).set(row.unresolved if row else 0)
        DUE_WITHIN_HOUR.labels(priority.value).set(row.due_soon if row else 0)
        BREACHED_NOW.labels(priority.value).set(row.breached if row else 0)
    return count
