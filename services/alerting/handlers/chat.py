"""Case notifications in a team's Slack or Microsoft Teams channel.

They are queued in the same transaction as the change they tell of (as emails are), with the
channel and the team's id as recipient: the webhook URL, a secret, is looked up when sending and is
never copied into the queue. :func:`deliver_chat` sends a claimed batch concurrently with no
transaction open, each post bounded by a timeout, so a slow webhook holds up neither the database
nor the emails (a job of its own)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import Counter

from libs.common.db import Database, UnitOfWork
from libs.common.jobs import claim_work_record
from libs.common.outbound import OutboundError, UnsafeUrl, post_json
from services.alerting.domain import notices
from services.alerting.domain.chat import ChatNotice, slack_payload, teams_payload
from services.alerting.models import FollowupCase, Notification, Team
from services.alerting.repository import AlertingRepository, CaseNotice, NotificationSent, NotificationUnsent

log = logging.getLogger(__name__)

CHAT_MESSAGES = Counter(
    "nps_alerting_chat_messages_total",
    "Slack and Teams webhook posts, by channel and outcome",
    ["channel", "outcome"],
)
CHANNELS = ("slack", "teams")
#: Where links in notifications point when the caller names no desk (the settings' default).
DEFAULT_DESK_URL = "http://127.0.0.1:8004"
TIMEOUT_SECONDS = 5.0


def case_url(desk_url: str, case_id: uuid.UUID) -> str:
    return f"{desk_url}/desk/cases/{case_id}"


def chat_notices(
    case: FollowupCase, team: Team | None, kind: notices.NoticeKind, title: str, desk_url: str
) -> list[CaseNotice]:
    """The messages for the case's team's channels, if it has any."""
    if team is None:
        return []
    message = ChatNotice(
        title=title,
        score=case.score,
        why=case.comment,
        touchpoint=case.touchpoint,
        customer=case.customer_name or case.customer_id,
        due_at=case.due_at,
        case_url=case_url(desk_url, case.id),
        priority=case.priority,
    )
    queued: list[CaseNotice] = []
    for channel, url, payload in (
        ("slack", team.slack_webhook_url, slack_payload),
        ("teams", team.teams_webhook_url, teams_payload),
    ):
        if url:
            notice = notices.Notice(kind, str(team.id), title, json.dumps(payload(message)))
            queued.append(CaseNotice(case.tenant_id, case.id, notice, channel=channel))
    return queued


@dataclass(frozen=True, slots=True)
class _Outcomes:
    sent: list[NotificationSent]
    unsent: list[NotificationUnsent]


async def deliver_chat(
    database: Database[AlertingRepository],
    client: httpx.AsyncClient,
    *,
    limit: int,
    lease: timedelta,
    allow_private: bool = False,
) -> int:
    """Post a batch of due chat messages and record how each went; returns how many were tried."""

    async def claim(uow: UnitOfWork[AlertingRepository]) -> Sequence[Notification]:
        return await uow.repository.claim_notifications(limit, lease, channels=CHANNELS)

    async def work(batch: Sequence[Notification]) -> _Outcomes:
        # The URLs are read in a transaction of their own, over before the first post.
        async with database.uow() as uow:
            urls = await uow.repository.webhook_urls({uuid.UUID(item.recipient) for item in batch})
        results = await asyncio.gather(*(_post(client, item, urls, allow_private) for item in batch))
        return _Outcomes(
            sent=[result for result in results if isinstance(result, NotificationSent)],
            unsent=[result for result in results if isinstance(result, NotificationUnsent)],
        )

    async def record(uow: UnitOfWork[AlertingRepository], outcomes: _Outcomes) -> None:
        await uow.repository.record_sent(outcomes.sent)
        await uow.repository.record_unsent(outcomes.unsent)

    return await claim_work_record(database, claim, work, record)


async def _post(
    client: httpx.AsyncClient,
    notification: Notification,
    urls: dict[tuple[str, str], str],
    allow_private: bool,
) -> NotificationSent | NotificationUnsent:
    now = datetime.now(UTC)
    url = urls.get((notification.recipient, notification.channel))
    attempts = notification.attempts
    if url is None:
        CHAT_MESSAGES.labels(notification.channel, "failed").inc()
        return NotificationUnsent(notification.id, attempts, None, now, "the team no longer has this webhook")
    try:
        await post_json(
            client, url, json.loads(notification.body), allow_private=allow_private, timeout=TIMEOUT_SECONDS
        )
    except UnsafeUrl as error:
        CHAT_MESSAGES.labels(notification.channel, "refused").inc()
        return NotificationUnsent(notification.id, attempts, None, now, str(error))
    except OutboundError as error:
        delay = notices.retry_delay(attempts) if error.retryable else None
        outcome = "retry" if delay is not None else "failed"
        CHAT_MESSAGES.labels(notification.channel, outcome).inc()
        log.warning(
            "chat.unsent", extra={"notification_id": notification.id, "error": str(error), "outcome": outcome}
        )
        if delay is None:
            return NotificationUnsent(notification.id, attempts, None, now, str(error))
        return NotificationUnsent(notification.id, attempts, now + delay, None, str(error))
    CHAT_MESSAGES.labels(notification.channel, "sent").inc()
    return NotificationSent(notification.id, datetime.now(UTC))
