"""What the desk's pages show, worked out from the rows: the words, the times, the marks. Kept apart
from the routes so the templates receive plain values and decide nothing."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import FormData

from services.alerting.desk_rows import CaseDetail, DeskRow
from services.alerting.domain import desk
from services.alerting.domain.cases import CaseStatus
from services.alerting.domain.notices import utc_text
from services.alerting.models import Answer, CaseEvent, FollowupCase

E = TypeVar("E", bound=StrEnum)

CHANNELS = [
    (desk.Channel.PHONE.value, "Phone"),
    (desk.Channel.EMAIL.value, "Email"),
    (desk.Channel.MEETING.value, "Meeting"),
]
OUTCOMES = [
    (desk.Outcome.REACHED.value, "Reached them"),
    (desk.Outcome.LEFT_MESSAGE.value, "Left a message"),
    (desk.Outcome.NO_ANSWER.value, "No answer"),
]
FIELD_LABELS = {
    "note": "The note",
    "text": "The note",
    "resolution": "The resolution",
    "root_cause": "The root cause",
    "reason": "The reason",
    "channel": "The channel",
    "outcome": "The outcome",
    "cursor": "The page link",
}
_KINDS = {
    "assigned": "Assigned",
    "note": "Note",
    "contact": "Contact",
    "contacted": "Marked contacted",
    "resolved": "Resolved",
    "reopened": "Reopened",
    "opened": "Opened",
    "routed": "Routed",
    "reminder": "Reminder sent",
    "breached": "SLA breached",
    "escalated": "Escalated",
}


class BadForm(ValueError):
    """A form field that is not one of the choices the page offered."""


def text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def optional_id(form: FormData, name: str) -> uuid.UUID | None:
    value = (text(form, name) or "").strip()
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadForm(f"{name.removesuffix('_id').capitalize()}: choose one from the list") from None


def choice(form: FormData, name: str, kind: type[E]) -> E:
    try:
        return kind(text(form, name) or "")
    except ValueError:
        raise BadForm(f"{FIELD_LABELS[name]}: choose one from the list") from None


@dataclass(frozen=True)
class ListChoice:
    """The list's filters as the form sent them; values that are not offered are set aside."""

    where: desk.CaseFilter
    after: desk.Cursor | None
    query: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @classmethod
    def parse(cls, *, status: str, touchpoint: str, owner: str, band: str, cursor: str) -> ListChoice:
        query = {
            key: value
            for key, value in {
                "status": status,
                "touchpoint": touchpoint,
                "owner": owner,
                "band": band,
            }.items()
            if value
        }
        assignee: uuid.UUID | str | None = None
        if owner == desk.UNASSIGNED:
            assignee = desk.UNASSIGNED
        elif owner:
            try:
                assignee = uuid.UUID(owner)
            except ValueError:
                query.pop("owner")
        after, problem = None, None
        if cursor:
            try:
                after = desk.Cursor.decode(cursor)
            except desk.InvalidInput:
                problem = "That page link is not valid any more: here is the first page."
        where = desk.CaseFilter(
            status=CaseStatus(status) if status in set(CaseStatus) else None,
            touchpoint=touchpoint.strip()[:63] or None,
            band=desk.Band(band) if band in set(desk.Band) else None,
            assignee=assignee,
        )
        return cls(where, after, query, problem)


def _span(delta: timedelta) -> str:
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def due_view(case: FollowupCase, now: datetime) -> dict[str, object]:
    """The due time as text, with how long is left (or how long ago it passed) as of ``now``; a
    case breaches only while nobody has contacted the customer."""
    waiting = case.status == CaseStatus.OPEN.value
    breached = case.breached_at is not None or (waiting and case.due_at < now)
    left = case.due_at - now
    relative = f"in {_span(left)}" if left.total_seconds() >= 0 else f"{_span(left)} ago"
    return {
        "iso": case.due_at.isoformat(),
        "text": utc_text(case.due_at),
        "relative": relative,
        "breached": breached,
        "counting": waiting,
    }


def row_view(row: DeskRow, now: datetime) -> dict[str, object]:
    case = row.case
    return {
        "id": str(case.id),
        "customer": case.customer_name or case.customer_id,
        "customer_id": case.customer_id,
        "score": case.score,
        "band": desk.band(case.score).value,
        "touchpoint": case.touchpoint,
        "owner": row.assignee_name or ("Unassigned" if case.assignee_user_id is None else "(unknown)"),
        "team": row.team_name,
        "status": case.status,
        "due": due_view(case, now),
    }


def _entry(entry: CaseEvent) -> dict[str, object]:
    data: Mapping[str, object] = entry.data or {}
    label = _KINDS.get(entry.kind, entry.kind.replace("_", " ").capitalize())
    if entry.kind == "contact":
        channel = dict(CHANNELS).get(str(data.get("channel")), str(data.get("channel")))
        outcome = dict(OUTCOMES).get(str(data.get("outcome")), str(data.get("outcome")))
        label = f"{channel}: {outcome.lower()}" + (" (first contact)" if data.get("first_contact") else "")
    elif entry.kind == "resolved" and data.get("root_cause"):
        label = f"Resolved, root cause: {data['root_cause']}"
    return {
        "at": utc_text(entry.at),
        "iso": entry.at.isoformat(),
        "actor": entry.actor,
        "label": label,
        "body": entry.body,
    }


def _earlier_answer(answer: Answer) -> dict[str, object]:
    return {
        "at": utc_text(answer.responded_at),
        "score": answer.score,
        "touchpoint": answer.touchpoint,
        "comment": answer.comment,
    }


def case_context(detail: CaseDetail, now: datetime) -> dict[str, object]:
    case = detail.row.case
    return {
        "case": row_view(detail.row, now)
        | {
            "comment": case.comment,
            "recommended": case.recommended,
            "csat": case.csat,
            "effort": case.effort,
            "email": case.customer_email,
            "opened": utc_text(case.opened_at),
            "routing_reason": case.routing_reason,
            "order_id": case.order_id,
            "ticket_id": case.ticket_id,
            "amount": f"{case.amount.normalize():f} {case.currency or ''}".strip()
            if case.amount is not None
            else None,
            "root_cause": case.root_cause,
            "resolution_note": case.resolution_note,
            "resolved": case.status == CaseStatus.RESOLVED.value,
            "assignee_id": str(case.assignee_user_id) if case.assignee_user_id else "",
            "team_id": str(case.team_id) if case.team_id else "",
            "contacted": utc_text(case.contacted_at) if case.contacted_at else None,
        },
        "timeline": [_entry(entry) for entry in detail.timeline],
        "earlier_answers": [_earlier_answer(answer) for answer in detail.earlier_answers],
        "earlier_cases": [
            {
                "id": str(other.id),
                "score": other.score,
                "status": other.status,
                "at": utc_text(other.opened_at),
            }
            for other in detail.earlier_cases
        ],
    }
