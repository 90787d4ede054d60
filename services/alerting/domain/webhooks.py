"""Outbound webhooks: which platform events a tenant's endpoint hears of, what each says, how it
is signed (Standard Webhooks), when a failed one is tried again, and when an endpoint is disabled.

Pure rules: no I/O, ``now`` and randomness passed in where they matter.

Each payload is ``{"type": ..., "timestamp": ..., "data": {...}}`` and carries identifiers, scores
and states, not contact details: no email address, no name, no survey context attributes (a
receiver that needs them looks the customer up by ``customer_id`` in its own system). The answer's
comment is the one free text that travels (in ``response.*``): it is what the answer is for."""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from standardwebhooks.webhooks import Webhook

from libs.common.events import (
    FollowupOpened,
    FollowupUpdated,
    NpsUpdated,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
)

EVENT_TYPES: Final = (
    "response.recorded",
    "response.updated",
    "case.opened",
    "case.updated",
    "case.breached",
    "case.resolved",
    "nps.changed",
    "recovery.measured",
)
#: Sent only by ``POST /v1/webhook-endpoints/{id}/ping``, whatever the endpoint subscribed to.
PING = "webhook.ping"

#: The wait after each failed attempt: 8 attempts over a little more than 27 h (at least 24 h,
#: whatever the jitter, which only lengthens a wait).
RETRY_DELAYS: Final = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_JITTER = 0.2
#: An endpoint whose every attempt has failed for this long is disabled.
DISABLE_AFTER: Final = timedelta(days=5)
#: How long a rotated-out secret keeps signing beside the new one.
ROTATION_OVERLAP: Final = timedelta(hours=24)
ATTEMPT_TIMEOUT_SECONDS: Final = 10.0
#: How much of an answer is read at all (the rest is never received) and how much the log keeps.
READ_LIMIT_BYTES: Final = 64 * 1024
EXCERPT_BYTES: Final = 1024
SECRET_BYTES: Final = 32


def new_secret() -> str:
    """A signing secret, ``whsec_`` and 32 random bytes in base64 (Standard Webhooks' form)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_secrets(
    secret: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its overlap."""
    if previous is not None and previous_until is not None and now < previous_until:
        return [secret, previous]
    return [secret]


def signature_header(secrets_now: Sequence[str], message_id: str, timestamp: datetime, body: str) -> str:
    """``webhook-signature``: one ``v1,<base64>`` per secret, space-separated, so a receiver that
    has either secret verifies the delivery during a rotation."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets_now)


def retry_delay(attempts: int, jitter: float) -> timedelta | None:
    """How long to wait after the ``attempts``-th failed attempt, or None: give up. ``jitter`` in
    [0, 1) spreads the retries of many deliveries that failed together (an endpoint that was down)."""
    if attempts < 1 or attempts > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts - 1] * (1 + MAX_JITTER * jitter)


def random_jitter() -> float:
    return random.random()


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One webhook event to deliver to every endpoint of the tenant that subscribed to its type.

    ``key`` is unique per source event and type, so a redelivered Kafka event adds no second
    delivery. ``ordering_key``: deliveries with the same one go to an endpoint in order (the
    customer; a touchpoint for scores)."""

    type: str
    key: str
    customer_id: str | None
    ordering_key: str
    timestamp: datetime
    data: Mapping[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": self.timestamp.isoformat(), "data": dict(self.data)}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _context_ids(context: SurveyContext | None) -> dict[str, Any]:
    if context is None:
        return {}
    return {
        name: value
        for name, value in (("order_id", context.order_id), ("ticket_id", context.ticket_id))
        if value is not None
    }


def response_recorded(event_id: str, data: SurveyResponded, category: str) -> Outgoing:
    return Outgoing(
        "response.recorded",
        f"{event_id}:response.recorded",
        data.customer_id,
        f"customer:{data.customer_id}",
        data.responded_at,
        {
            "response_id": str(data.response_id),
            "customer_id": data.customer_id,
            "touchpoint": data.touchpoint,
            "score": data.score,
            "category": category,
            "comment": data.comment,
            "responded_at": _iso(data.responded_at),
            **_context_ids(data.context),
        },
    )


def response_updated(event_id: str, data: SurveyResponseUpdated, category: str) -> Outgoing:
    return Outgoing(
        "response.updated",
        f"{event_id}:response.updated",
        data.customer_id,
        f"customer:{data.customer_id}",
        data.updated_at,
        {
            "response_id": str(data.response_id),
            "customer_id": data.customer_id,
            "touchpoint": data.touchpoint,
            "revision": data.revision,
            "score": data.score,
            "category": category,
            "comment": data.comment,
            "responded_at": _iso(data.responded_at),
            "updated_at": _iso(data.updated_at),
        },
    )


def case_opened(event_id: str, data: FollowupOpened) -> Outgoing:
    return Outgoing(
        "case.opened",
        f"{event_id}:case.opened",
        data.customer_id,
        f"customer:{data.customer_id}",
        data.opened_at,
        {
            "case_id": str(data.case_id),
            "response_id": str(data.response_id),
            "customer_id": data.customer_id,
            "touchpoint": data.touchpoint,
            "score": data.score,
            "priority": data.priority,
            "opened_at": _iso(data.opened_at),
            "due_at": _iso(data.due_at),
            "team_id": None if data.team_id is None else str(data.team_id),
        },
    )


@dataclass(frozen=True, slots=True)
class CaseMarks:
    """What a case's webhooks have told so far, to announce each change once."""

    breached: bool = False
    resolved: bool = False
    recovered: bool = False


def case_changes(
    event_id: str, data: FollowupUpdated, customer_id: str | None, marks: CaseMarks
) -> tuple[list[Outgoing], CaseMarks]:
    """``case.updated`` for every update, and ``case.breached``, ``case.resolved`` and
    ``recovery.measured`` when the update is the first to show it (a reopened case that is
    breached or resolved again announces it again)."""
    ordering = f"customer:{customer_id}" if customer_id else f"case:{data.case_id}"
    common = {"case_id": str(data.case_id), "customer_id": customer_id}
    state = {
        **common,
        "status": data.status,
        "breached": data.breached,
        "priority": data.priority,
        "touchpoint": data.touchpoint,
        "team_id": None if data.team_id is None else str(data.team_id),
        "opened_at": _iso(data.opened_at),
        "contacted_at": _iso(data.contacted_at),
        "resolved_at": _iso(data.resolved_at),
        "root_cause": data.root_cause,
        "updated_at": _iso(data.updated_at),
    }
    moment = data.updated_at
    out = [Outgoing("case.updated", f"{event_id}:case.updated", customer_id, ordering, moment, state)]
    resolved = data.status == "resolved"
    if data.breached and not marks.breached:
        out.append(
            Outgoing(
                "case.breached",
                f"{event_id}:case.breached",
                customer_id,
                ordering,
                moment,
                {**common, "priority": data.priority, "breached_at": _iso(moment)},
            )
        )
    if resolved and not marks.resolved:
        out.append(
            Outgoing(
                "case.resolved",
                f"{event_id}:case.resolved",
                customer_id,
                ordering,
                moment,
                {
                    **common,
                    "resolved_at": _iso(data.resolved_at),
                    "root_cause": data.root_cause,
                    "seconds_to_resolution": data.seconds_to_resolution,
                },
            )
        )
    recovered = data.recovery_score is not None
    if recovered and not marks.recovered:
        out.append(
            Outgoing(
                "recovery.measured",
                f"{event_id}:recovery.measured",
                customer_id,
                ordering,
                moment,
                {**common, "recovery_score": data.recovery_score},
            )
        )
    return out, CaseMarks(breached=data.breached, resolved=resolved, recovered=recovered or marks.recovered)


def nps_changed(event_id: str, data: NpsUpdated) -> Outgoing | None:
    """Only a touchpoint's all-time score for everybody: scoring announces every day, week, month
    and segment cell too, which would be dozens of deliveries per answer."""
    if data.window.bucket != "all" or data.segment is not None:
        return None
    interval = data.confidence_interval
    return Outgoing(
        "nps.changed",
        f"{event_id}:nps.changed",
        None,
        f"touchpoint:{data.touchpoint}",
        data.as_of,
        {
            "touchpoint": data.touchpoint,
            "nps": data.nps,
            "promoters": data.promoters,
            "passives": data.passives,
            "detractors": data.detractors,
            "responses": data.responses,
            "confidence_interval": None
            if interval is None
            else {"low": interval.low, "high": interval.high, "level": interval.level},
            "as_of": _iso(data.as_of),
        },
    )


def ping(endpoint_id: str, now: datetime, nonce: str) -> Outgoing:
    return Outgoing(
        PING,
        f"ping:{nonce}",
        None,
        f"ping:{nonce}",
        now,
        {"endpoint_id": endpoint_id, "message": "A test delivery from the NPS platform."},
    )
