"""Outbound webhooks: queueing a delivery per subscribed endpoint in the transaction that consumed
the event, and the sender job that posts them.

Delivery is at least once. A consumed event becomes durable rows before its offset is committed;
the sender claims due rows for a lease (a short transaction, committed), posts them concurrently
with no transaction open, each bounded by a timeout, and records the outcome in another. A lease
rather than a row lock held across the HTTP call: a lock would pin a database connection and an
open transaction for up to the timeout per batch, and a sender killed with ``kill -9`` would leave
its rows exactly as a lease does, except that the lease's expiry is explicit. The price of both is
the same: a sender killed after the receiver's 2xx but before recording it sends that delivery again
(same ``webhook-id``, so the receiver can drop the repeat)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter, Histogram

from libs.common.db import Database, UnitOfWork
from libs.common.events import (
    FollowupOpened,
    FollowupUpdated,
    NpsUpdated,
    SurveyResponded,
    SurveyResponseUpdated,
    nps_category,
)
from libs.common.jobs import claim_work_record
from libs.common.outbound import OutboundError, UnsafeUrl, post_bytes
from services.alerting.domain import notices
from services.alerting.domain import webhooks as rules
from services.alerting.handlers.sla import cx_managers
from services.alerting.repository import AlertingRepository, CaseNotice
from services.alerting.repository_webhooks import AttemptOutcome, ClaimedDelivery, DisabledEndpoint

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "nps_alerting_webhook_deliveries_total",
    "Outbound webhook attempts, by outcome: delivered, retry (failed, tried again later), failed "
    "(retries exhausted, or a redirect), refused (the target resolves to a private address)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "nps_alerting_webhook_attempt_seconds",
    "Time one outbound webhook attempt took, resolution to the first bytes read",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENDPOINTS_DISABLED = Counter(
    "nps_alerting_webhook_endpoints_disabled_total",
    "Webhook endpoints disabled after every attempt failed for days",
)
for _label in ("delivered", "retry", "failed", "refused"):
    DELIVERIES.labels(_label)


# --- queueing, in the consumer's transaction --------------------------------------------------


async def queue_webhooks(events: Sequence[Any], uow: UnitOfWork[AlertingRepository]) -> None:
    """The ``webhooks`` consumer's batch handler: the runner has claimed the events (idempotent
    consumer); each becomes one delivery per enabled endpoint of its tenant subscribed to its type."""
    repository = uow.repository
    endpoints = await repository.subscribed_endpoints(uuid.UUID(event.tenant_id) for event in events)
    if not endpoints:
        return
    updates = [event for event in events if isinstance(event.data, FollowupUpdated)]
    case_ids = [event.data.case_id for event in updates]
    customers = await repository.case_customers(case_ids)
    marks = await repository.lock_case_marks(case_ids)
    changed: dict[uuid.UUID, tuple[uuid.UUID, rules.CaseMarks]] = {}
    outgoing: list[tuple[uuid.UUID, rules.Outgoing]] = []
    for event in events:
        tenant_id = uuid.UUID(event.tenant_id)
        data = event.data
        if isinstance(data, SurveyResponded):
            outgoing.append(
                (tenant_id, rules.response_recorded(event.id, data, nps_category(data.score).value))
            )
        elif isinstance(data, SurveyResponseUpdated):
            outgoing.append(
                (tenant_id, rules.response_updated(event.id, data, nps_category(data.score).value))
            )
        elif isinstance(data, FollowupOpened):
            outgoing.append((tenant_id, rules.case_opened(event.id, data)))
        elif isinstance(data, FollowupUpdated):
            before = marks.get(data.case_id, rules.CaseMarks())
            told, after = rules.case_changes(event.id, data, customers.get(data.case_id), before)
            marks[data.case_id] = after
            changed[data.case_id] = (tenant_id, after)
            outgoing.extend((tenant_id, item) for item in told)
        elif isinstance(data, NpsUpdated):
            score = rules.nps_changed(event.id, data)
            if score is not None:
                outgoing.append((tenant_id, score))
    await repository.save_case_marks(changed)
    rows = [
        delivery_row(endpoint.id, tenant_id, item)
        for tenant_id, item in outgoing
        for endpoint in endpoints
        if endpoint.tenant_id == tenant_id and item.type in endpoint.event_types
    ]
    await repository.queue_webhook_deliveries(rows)


def delivery_row(endpoint_id: uuid.UUID, tenant_id: uuid.UUID, item: rules.Outgoing) -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "endpoint_id": endpoint_id,
        "event_type": item.type,
        "event_key": item.key[:300],
        "customer_id": item.customer_id,
        "ordering_key": item.ordering_key[:300],
        "payload": item.payload(),
    }


# --- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderOptions:
    limit: int
    lease: timedelta
    allow_private: bool = False
    timeout: float = rules.ATTEMPT_TIMEOUT_SECONDS


async def deliver_webhooks(
    database: Database[AlertingRepository], client: httpx.AsyncClient, options: SenderOptions
) -> int:
    """Post a batch of due deliveries and record how each went; returns how many were tried."""

    async def claim(uow: UnitOfWork[AlertingRepository]) -> Sequence[ClaimedDelivery]:
        return await uow.repository.claim_webhook_deliveries(options.limit, options.lease)

    async def work(batch: Sequence[ClaimedDelivery]) -> list[AttemptOutcome]:
        return list(await asyncio.gather(*(attempt(client, item, options) for item in batch)))

    async def record(uow: UnitOfWork[AlertingRepository], outcomes: list[AttemptOutcome]) -> None:
        disabled = await uow.repository.record_webhook_attempts(outcomes, datetime.now(UTC))
        for endpoint in disabled:
            await _tell_disabled(uow, endpoint)

    return await claim_work_record(database, claim, work, record)


async def attempt(client: httpx.AsyncClient, item: ClaimedDelivery, options: SenderOptions) -> AttemptOutcome:
    """One signed POST of a delivery. Signed at the attempt (``webhook-timestamp`` is now, as
    receivers refuse old ones), with every secret that signs now."""
    now = datetime.now(UTC)
    body, headers = signed_request(item, now)
    started = time.perf_counter()
    status: int | None = None
    excerpt: str | None = None
    try:
        answer = await post_bytes(
            client,
            item.url,
            body.encode(),
            headers=headers,
            allow_private=options.allow_private,
            timeout=options.timeout,
            read_limit=rules.READ_LIMIT_BYTES,
        )
    except UnsafeUrl as error:
        return _outcome(item, "refused", now, started, None, str(error), None)
    except OutboundError as error:
        return _outcome(item, "retry", now, started, None, error.reason, None)
    status = answer.status
    excerpt = answer.head[: rules.EXCERPT_BYTES].decode("utf-8", "replace")
    if answer.is_success:
        return _outcome(item, "delivered", now, started, status, None, excerpt)
    if 300 <= status < 400:
        return _outcome(
            item, "failed", now, started, status, f"answered {status}: redirects are not followed", excerpt
        )
    return _outcome(item, "retry", now, started, status, f"answered {status}", excerpt)


def signed_request(item: ClaimedDelivery, now: datetime) -> tuple[str, dict[str, str]]:
    """The body and the Standard Webhooks headers of one attempt of ``item`` at ``now``."""
    body = json.dumps(item.payload, separators=(",", ":"))
    message_id = f"msg_{item.message_id.hex}"
    signing = rules.signing_secrets(item.secret, item.previous_secret, item.previous_secret_until, now)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": rules.signature_header(signing, message_id, now, body),
        "User-Agent": "nps-webhooks/1",
    }
    return body, headers


def _outcome(
    item: ClaimedDelivery,
    kind: str,
    now: datetime,
    started: float,
    status: int | None,
    error: str | None,
    excerpt: str | None,
) -> AttemptOutcome:
    duration = time.perf_counter() - started
    ATTEMPT_SECONDS.observe(duration)
    delay = rules.retry_delay(item.attempts, rules.random_jitter()) if kind == "retry" else None
    if kind == "retry" and delay is None:
        kind = "failed"
    DELIVERIES.labels(kind).inc()
    if kind != "delivered":
        log.warning(
            "webhook.unsent",
            extra={
                "delivery_id": item.id,
                "endpoint_id": str(item.endpoint_id),
                "error": error,
                "outcome": kind,
            },
        )
    return AttemptOutcome(
        delivery_id=item.id,
        endpoint_id=item.endpoint_id,
        result="delivered" if kind == "delivered" else "retry" if kind == "retry" else "failed",
        attempted_at=now,
        duration_seconds=duration,
        status_code=status,
        error=error,
        response_excerpt=excerpt,
        next_attempt_at=None if delay is None else now + delay,
    )


async def _tell_disabled(uow: UnitOfWork[AlertingRepository], endpoint: DisabledEndpoint) -> None:
    """Email the tenant's CX managers (or its owner) that an endpoint was disabled, once."""
    repository = uow.repository
    row = await repository.webhook_endpoint(endpoint.tenant_id, endpoint.id)
    owner = (await repository.owner_emails([endpoint.tenant_id])).get(endpoint.tenant_id)
    people = await repository.people(endpoint.tenant_id)
    policy = await repository.desk_policy(endpoint.tenant_id)
    recipients = list(dict.fromkeys([*cx_managers(people, policy, owner), *([owner] if owner else [])]))
    shown = row.description or str(endpoint.id) if row is not None else str(endpoint.id)
    ENDPOINTS_DISABLED.inc()
    log.warning("webhook.endpoint_disabled", extra={"endpoint_id": str(endpoint.id)})
    queued = [
        CaseNotice(
            endpoint.tenant_id,
            None,
            notices.Notice(
                notices.NoticeKind.WEBHOOK_DISABLED,
                recipient,
                f"Webhook endpoint disabled: {shown}"[:300],
                "\n".join(
                    [
                        f"The webhook endpoint {shown} ({endpoint.id}) was disabled: {endpoint.reason}.",
                        "",
                        "Deliveries not yet made wait; they are sent once it is enabled again.",
                        f"The delivery log: GET /v1/webhook-endpoints/{endpoint.id}/deliveries",
                    ]
                ),
            ),
            key=f"{endpoint.id}:{datetime.now(UTC).isoformat()}",
        )
        for recipient in recipients
    ]
    await repository.queue_notifications(queued)
