"""What the alert emails say, and how long to wait before trying a failed one again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class NoticeKind(StrEnum):
    CASE_OPENED = "case_opened"
    CASE_BREACHED = "case_breached"
    SLA_REMINDER = "sla_reminder"
    ESCALATION_TEAM_LEAD = "escalation_team_lead"
    ESCALATION_CX_MANAGER = "escalation_cx_manager"
    RESOLUTION_REMINDER = "resolution_reminder"
    DIGEST = "digest"
    #: A webhook endpoint was disabled after persistent failure (services/alerting/handlers/webhooks.py).
    WEBHOOK_DISABLED = "webhook_disabled"


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What a person needs to know about a case to act on it."""

    case_id: uuid.UUID
    customer_id: str
    customer_name: str | None
    customer_email: str | None
    touchpoint: str
    score: int
    comment: str | None
    opened_at: datetime
    due_at: datetime
    owner_email: str | None
    recommended: bool | None = None
    csat: int | None = None
    effort: int | None = None
    #: The case's page on the case desk, where it is worked: every notification links to it.
    case_url: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    recipient: str
    subject: str
    body: str


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _customer_lines(case: CaseFacts) -> list[str]:
    who = f"{case.customer_name} ({case.customer_id})" if case.customer_name else case.customer_id
    comment = case.comment.strip() if case.comment and case.comment.strip() else "(no comment)"
    # A revision of the answer can arrive before the answer itself, and only the answer has it.
    contact = case.customer_email or "not known yet (look the customer up by their id)"
    return [
        f"Customer: {who}",
        f"Contact: {contact}",
        f"Answered: {utc_text(case.opened_at)}",
        "",
        "Their comment:",
        comment,
        *_follow_up_lines(case),
    ]


def _follow_up_lines(case: CaseFacts) -> list[str]:
    lines = []
    if case.recommended is not None:
        lines.append(f"Recommended us in the last 12 months: {'yes' if case.recommended else 'no'}")
    if case.csat is not None:
        lines.append(f"Satisfaction (CSAT, 1-5): {case.csat}")
    if case.effort is not None:
        lines.append(f"Effort (1-7): {case.effort}")
    return ["", *lines] if lines else []


def case_url(desk_public_url: str, case_id: uuid.UUID) -> str:
    return f"{desk_public_url.rstrip('/')}/desk/cases/{case_id}"


def _how_to_update(case: CaseFacts) -> list[str]:
    desk = [f"Open the case on the case desk: {case.case_url}", ""] if case.case_url else []
    return [
        *desk,
        "When you have reached out, mark the case through the alerting API:",
        f'  PATCH /v1/cases/{case.case_id}  {{"status": "contacted"}}',
        f'and once it is settled:  PATCH /v1/cases/{case.case_id}  {{"status": "resolved"}}',
    ]


def case_opened(case: CaseFacts, recipient: str) -> Notice:
    subject = f"Detractor at {case.touchpoint}: score {case.score}, follow up by {utc_text(case.due_at)}"
    lines = [
        f"A detractor (score {case.score}) answered the survey at touchpoint {case.touchpoint}.",
        "",
        *_customer_lines(case),
        "",
        f"Please contact them: due by {utc_text(case.due_at)}.",
        "",
        *_how_to_update(case),
        "",
        f"Case: {case.case_id}",
    ]
    return Notice(NoticeKind.CASE_OPENED, recipient, subject, "\n".join(lines) + "\n")


def case_breached(case: CaseFacts, recipient: str, breached_at: datetime) -> Notice:
    subject = f"Follow-up overdue at {case.touchpoint}: score {case.score}, was due {utc_text(case.due_at)}"
    owner = case.owner_email or "nobody (the tenant has no owner email)"
    lines = [
        f"A detractor case has not been contacted in time: it was due by {utc_text(case.due_at)}",
        f"and is still open at {utc_text(breached_at)}.",
        "",
        f"Score {case.score} at touchpoint {case.touchpoint}. Assigned to: {owner}.",
        "",
        *_customer_lines(case),
        "",
        *_how_to_update(case),
        "",
        f"Case: {case.case_id}",
    ]
    return Notice(NoticeKind.CASE_BREACHED, recipient, subject, "\n".join(lines) + "\n")


# --- Delivery retries ----------------------------------------------------------------------------

#: Temporary failures are retried with doubling waits for about a working day, then given up.
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after ``attempts`` tries that all failed temporarily; ``None`` once it is time to give up."""
    if attempts < 1:
        raise ValueError("retry_delay is asked after at least one attempt")
    if attempts >= MAX_ATTEMPTS:
        return None
    # Cap the exponent before multiplying so a huge count cannot overflow timedelta.
    return min(FIRST_RETRY * (1 << min(attempts - 1, 20)), LONGEST_RETRY)


# --- The SLA clock's messages ----------------------------------------------------------------------


def sla_reminder(case: CaseFacts, recipient: str) -> Notice:
    """To the owner, before the first-contact time runs out."""
    subject = f"Reminder: contact the detractor at {case.touchpoint} by {utc_text(case.due_at)}"
    lines = [
        f"Time is running out to contact a detractor (score {case.score}): due by {utc_text(case.due_at)}.",
        "A customer contacted within a day often turns passive; two weeks is too late.",
        "",
        *_customer_lines(case),
        "",
        f"Case: {case.case_id}",
    ]
    return Notice(NoticeKind.SLA_REMINDER, recipient, subject, "\n".join(lines) + "\n")


def escalation(case: CaseFacts, recipient: str, at: datetime, *, level: NoticeKind) -> Notice:
    """To the team lead at the breach, then to the CX manager: nobody has contacted the customer."""
    who = "team lead" if level is NoticeKind.ESCALATION_TEAM_LEAD else "CX manager"
    owner = case.owner_email or "nobody"
    subject = (
        f"Escalated to you ({who}): detractor at {case.touchpoint} not contacted, due {utc_text(case.due_at)}"
    )
    lines = [
        f"A detractor case is overdue and has been escalated to you as {who}.",
        f"It was due by {utc_text(case.due_at)} and nobody has reached the customer as of {utc_text(at)}.",
        "",
        f"Score {case.score} at touchpoint {case.touchpoint}. Owner: {owner}.",
        "",
        *_customer_lines(case),
        "",
        f"Case: {case.case_id}",
    ]
    return Notice(level, recipient, subject, "\n".join(lines) + "\n")


def resolution_reminder(case: CaseFacts, recipient: str, resolution_due: datetime) -> Notice:
    subject = f"Reminder: resolve the detractor case at {case.touchpoint} by {utc_text(resolution_due)}"
    lines = [
        f"A detractor case (score {case.score}) should be resolved by {utc_text(resolution_due)}.",
        "",
        *_customer_lines(case),
        "",
        f"Case: {case.case_id}",
    ]
    return Notice(NoticeKind.RESOLUTION_REMINDER, recipient, subject, "\n".join(lines) + "\n")
