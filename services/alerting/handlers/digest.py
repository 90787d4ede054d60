"""The daily digest: each morning (the tenant's digest hour, in its business-hours time zone, on its
working days) every active person gets one email of the open cases they can see, soonest due first,
each with its link. Queued as notifications under a key of person and local date, so a job run
twice, or on two replicas, sends one digest a day."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from libs.common.db import UnitOfWork
from services.alerting.domain import notices
from services.alerting.domain.policy import DeskPolicy
from services.alerting.handlers.chat import case_url
from services.alerting.models import FollowupCase, User
from services.alerting.repository import AlertingRepository, CaseNotice, People

log = logging.getLogger(__name__)

#: Cases listed in one digest; the rest are counted.
LISTED = 20
SOON = timedelta(hours=24)


def digest_day(policy: DeskPolicy, now: datetime) -> date | None:
    """The local date whose digest is due at ``now``, or ``None`` (no digest, not a working day, or
    before the digest hour)."""
    if policy.digest_hour is None:
        return None
    hours = policy.sla.hours
    local = now.astimezone(ZoneInfo(hours.time_zone))
    if local.hour < policy.digest_hour or not hours.is_working_day(local.date()):
        return None
    return local.date()


def visible_to(user: User, people: People, cases: Sequence[FollowupCase]) -> list[FollowupCase]:
    """Agents: their own cases and their teams'; everybody else: all of the tenant's."""
    if user.role != "agent":
        return list(cases)
    teams = {team for team, member in people.members if member == user.id}
    return [case for case in cases if case.assignee_user_id == user.id or case.team_id in teams]


def digest(user: User, cases: Sequence[FollowupCase], now: datetime, desk_url: str) -> notices.Notice:
    soon = [case for case in cases if case.due_at <= now + SOON]
    breached = [case for case in cases if case.breached_at is not None]
    subject = f"Your follow-up cases today: {len(cases)} open, {len(soon)} due within a day"
    lines = [
        f"Good morning {user.name},",
        "",
        f"{len(cases)} open follow-up cases, {len(breached)} of them overdue, "
        f"{len(soon)} due within 24 hours.",
        "",
    ]
    for case in sorted(cases, key=lambda case: case.due_at)[:LISTED]:
        mark = "OVERDUE " if case.breached_at is not None else ""
        who = case.customer_name or case.customer_id
        lines.append(
            f"- {mark}due {notices.utc_text(case.due_at)}: score {case.score}, {who}, {case.touchpoint}"
        )
        lines.append(f"  {case_url(desk_url, case.id)}")
    if len(cases) > LISTED:
        lines.append(f"... and {len(cases) - LISTED} more: {desk_url}/desk")
    return notices.Notice(notices.NoticeKind.DIGEST, user.email, subject, "\n".join(lines) + "\n")


async def queue_digests(
    uow: UnitOfWork[AlertingRepository], tenant_id: uuid.UUID, now: datetime, desk_url: str
) -> date | None:
    """Queue today's digest of every active person of the tenant who has open cases to see; the
    tenant's local date whose digests are queued, or ``None`` when it is not digest time there."""
    policy = await uow.repository.desk_policy(tenant_id)
    day = digest_day(policy, now)
    if day is None:
        return None
    people = await uow.repository.people(tenant_id)
    cases = await uow.repository.unresolved_cases(tenant_id)
    queued = []
    for user in people.users.values():
        mine = visible_to(user, people, cases) if user.active else []
        if mine:
            notice = digest(user, mine, now, desk_url)
            queued.append(CaseNotice(tenant_id, None, notice, key=f"{user.id}:{day.isoformat()}"))
    await uow.repository.queue_notifications(queued)
    log.info("digest.queued", extra={"tenant_id": str(tenant_id), "people": len(queued)})
    return day
