"""The outbound webhooks' queries, a part of :class:`services.alerting.repository.AlertingRepository`
(which inherits them): kept in a module of their own so the endpoints, deliveries and attempts read
together, apart from the cases' queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Uuid, and_, any_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.jobs import Due
from services.alerting.domain.webhooks import DISABLE_AFTER, CaseMarks
from services.alerting.models import (
    FollowupCase,
    WebhookAttempt,
    WebhookCaseMarks,
    WebhookDelivery,
    WebhookEndpoint,
)

SCHEMA = "alerting"
_UUIDS = ARRAY(Uuid())


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery claimed for one attempt, with what its endpoint needs to send it."""

    id: int
    message_id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one attempt went: ``delivered``; ``retry`` at ``next_attempt_at``; or ``failed`` for good."""

    delivery_id: int
    endpoint_id: uuid.UUID
    result: Literal["delivered", "retry", "failed"]
    attempted_at: datetime
    duration_seconds: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DisabledEndpoint:
    id: uuid.UUID
    tenant_id: uuid.UUID
    reason: str


@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


class WebhookQueries:
    _session: AsyncSession

    # --- endpoints ---------------------------------------------------------------------------

    async def insert_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._session.add(endpoint)
        await self._session.flush()

    async def webhook_endpoint(self, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        return await self._session.scalar(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
            )
        )

    async def webhook_endpoints(self, tenant_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
        result = await self._session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return result.all()

    async def delete_webhook_endpoint(self, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
        result = await self._session.execute(
            delete(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id)
            .returning(WebhookEndpoint.id)
        )
        return result.first() is not None

    async def subscribed_endpoints(self, tenant_ids: Iterable[uuid.UUID]) -> Sequence[WebhookEndpoint]:
        """The enabled endpoints of these tenants: one query per consumed batch."""
        wanted = list(set(tenant_ids))
        if not wanted:
            return []
        result = await self._session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == any_(bindparam("tenants", wanted, type_=_UUIDS)),
                WebhookEndpoint.enabled,
            )
        )
        return result.all()

    # --- what the consumer writes ------------------------------------------------------------

    async def case_customers(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        wanted = list(set(case_ids))
        if not wanted:
            return {}
        rows = await self._session.execute(
            select(FollowupCase.id, FollowupCase.customer_id).where(
                FollowupCase.id == any_(bindparam("cases", wanted, type_=_UUIDS))
            )
        )
        return {row.id: row.customer_id for row in rows}

    async def lock_case_marks(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CaseMarks]:
        """The marks of these cases, locked until the transaction ends: two consumers of one case's
        updates (a rebalance) announce each change once."""
        wanted = sorted(set(case_ids))
        if not wanted:
            return {}
        rows = await self._session.scalars(
            select(WebhookCaseMarks)
            .where(WebhookCaseMarks.case_id == any_(bindparam("cases", wanted, type_=_UUIDS)))
            .order_by(WebhookCaseMarks.case_id)
            .with_for_update()
        )
        return {row.case_id: CaseMarks(row.breached, row.resolved, row.recovered) for row in rows}

    async def save_case_marks(self, marks: dict[uuid.UUID, tuple[uuid.UUID, CaseMarks]]) -> None:
        if not marks:
            return
        rows = [
            {
                "case_id": case_id,
                "tenant_id": tenant_id,
                "breached": mark.breached,
                "resolved": mark.resolved,
                "recovered": mark.recovered,
            }
            for case_id, (tenant_id, mark) in sorted(marks.items())
        ]
        statement = pg_insert(WebhookCaseMarks).values(rows)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[WebhookCaseMarks.case_id],
                set_={
                    "breached": statement.excluded.breached,
                    "resolved": statement.excluded.resolved,
                    "recovered": statement.excluded.recovered,
                },
            )
        )

    async def queue_webhook_deliveries(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert deliveries; one an endpoint and event, so an event consumed twice adds none."""
        if not rows:
            return 0
        result = await self._session.execute(
            pg_insert(WebhookDelivery)
            .values(list(rows))
            .on_conflict_do_nothing(constraint="uq_webhook_deliveries_event")
            .returning(WebhookDelivery.id)
        )
        return len(result.all())

    # --- the sender --------------------------------------------------------------------------

    async def claim_webhook_deliveries(self, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
        """Claim due deliveries of enabled endpoints for ``lease``: each spends an attempt and is not
        due again until the lease is over, so the claim commits before anything is sent, and a
        sender killed mid-way leaves them to be sent again when the lease runs out.

        A delivery waits while an older one to the same endpoint with the same ordering key (the
        customer) is pending, whether that one is due, waiting for a retry or claimed by another
        sender: per customer, an endpoint hears of events in the order they were queued."""
        statement = text(
            f"""
            WITH due AS (
                SELECT d.id FROM {SCHEMA}.webhook_deliveries d
                JOIN {SCHEMA}.webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
                WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                  AND NOT EXISTS (
                      SELECT 1 FROM {SCHEMA}.webhook_deliveries older
                      WHERE older.endpoint_id = d.endpoint_id AND older.ordering_key = d.ordering_key
                        AND older.state = 'pending' AND older.id < d.id)
                ORDER BY d.next_attempt_at, d.id
                LIMIT :limit
                FOR UPDATE OF d SKIP LOCKED
            ), claimed AS (
                UPDATE {SCHEMA}.webhook_deliveries d
                SET attempts = d.attempts + 1, next_attempt_at = now() + :lease
                FROM due WHERE d.id = due.id
                RETURNING d.id, d.message_id, d.tenant_id, d.endpoint_id, d.event_type, d.payload,
                          d.attempts, d.created_at
            )
            SELECT claimed.*, e.url, e.secret, e.previous_secret, e.previous_secret_until
            FROM claimed JOIN {SCHEMA}.webhook_endpoints e ON e.id = claimed.endpoint_id
            ORDER BY claimed.id
            """
        )
        rows = await self._session.execute(statement, {"limit": limit, "lease": lease})
        return [ClaimedDelivery(**row._mapping) for row in rows]

    async def record_webhook_attempts(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[DisabledEndpoint]:
        """Record attempts and move their deliveries on; mark endpoints that answered as healthy and
        disable those whose every attempt has failed for ``DISABLE_AFTER``. Returns the endpoints
        this disabled (to tell their tenants).

        A delivery that is no longer pending (another sender delivered it after this one's lease
        ran out, or it was erased) keeps its state: the attempt is still logged."""
        if not outcomes:
            return []
        self._session.add_all(
            WebhookAttempt(
                delivery_id=outcome.delivery_id,
                attempted_at=outcome.attempted_at,
                duration_seconds=round(outcome.duration_seconds, 3),
                status_code=outcome.status_code,
                error=outcome.error,
                response_excerpt=outcome.response_excerpt,
            )
            for outcome in outcomes
        )
        await self._session.flush()
        # One statement for the batch: unnest() of arrays, one cached statement whatever its size.
        await self._session.execute(
            text(
                f"""
                UPDATE {SCHEMA}.webhook_deliveries d SET
                    state = CASE WHEN o.result = 'retry' THEN d.state ELSE o.result END,
                    delivered_at = CASE WHEN o.result = 'delivered' THEN o.at ELSE d.delivered_at END,
                    failed_at = CASE WHEN o.result = 'failed' THEN o.at ELSE d.failed_at END,
                    next_attempt_at = CASE WHEN o.result = 'retry' THEN o.next ELSE d.next_attempt_at END,
                    last_error = o.error
                FROM unnest(CAST(:ids AS bigint[]), CAST(:results AS text[]), CAST(:ats AS timestamptz[]),
                            CAST(:nexts AS timestamptz[]), CAST(:errors AS text[]))
                     AS o(id, result, at, next, error)
                WHERE d.id = o.id AND d.state = 'pending'
                """
            ),
            {
                "ids": [outcome.delivery_id for outcome in outcomes],
                "results": [outcome.result for outcome in outcomes],
                "ats": [outcome.attempted_at for outcome in outcomes],
                "nexts": [outcome.next_attempt_at for outcome in outcomes],
                "errors": [outcome.error for outcome in outcomes],
            },
        )
        healthy = {outcome.endpoint_id for outcome in outcomes if outcome.result == "delivered"}
        failing = {outcome.endpoint_id for outcome in outcomes} - healthy
        if healthy:
            await self._session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == any_(bindparam("healthy", sorted(healthy), type_=_UUIDS)))
                .values(failing_since=None)
            )
        disabled: list[DisabledEndpoint] = []
        if failing:
            ids = bindparam("failing", sorted(failing), type_=_UUIDS)
            await self._session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == any_(ids), WebhookEndpoint.failing_since.is_(None))
                .values(failing_since=now)
            )
            reason = (
                f"every delivery attempt failed for {DISABLE_AFTER.days} days; "
                "fix the endpoint, then enable it again (PATCH enabled=true)"
            )
            result = await self._session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id == any_(ids),
                    WebhookEndpoint.enabled,
                    WebhookEndpoint.failing_since <= now - DISABLE_AFTER,
                )
                .values(enabled=False, disabled_reason=reason, updated_at=now)
                .returning(WebhookEndpoint.id, WebhookEndpoint.tenant_id)
            )
            disabled = [DisabledEndpoint(row.id, row.tenant_id, reason) for row in result]
        return disabled

    async def webhook_queue(self) -> Due:
        """The oldest due delivery of an enabled endpoint, and how many are due."""
        row = (
            await self._session.execute(
                select(func.min(WebhookDelivery.next_attempt_at), func.count())
                .select_from(WebhookDelivery)
                .join(WebhookEndpoint, and_(WebhookEndpoint.id == WebhookDelivery.endpoint_id))
                .where(
                    WebhookDelivery.state == "pending",
                    WebhookDelivery.next_attempt_at <= func.now(),
                    WebhookEndpoint.enabled,
                )
            )
        ).one()
        return Due(row[0], int(row[1]))

    # --- the delivery log --------------------------------------------------------------------

    async def webhook_delivery_log(
        self, endpoint_id: uuid.UUID, before: int | None, limit: int
    ) -> list[LoggedDelivery]:
        """An endpoint's deliveries, newest first, from before the cursor, each with its attempts."""
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if before is not None:
            query = query.where(WebhookDelivery.id < before)
        deliveries = (
            await self._session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))
        ).all()
        if not deliveries:
            return []
        attempts = (
            await self._session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_([delivery.id for delivery in deliveries]))
                .order_by(WebhookAttempt.id)
            )
        ).all()
        by_delivery: dict[int, list[WebhookAttempt]] = {}
        for attempt in attempts:
            by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
        return [LoggedDelivery(delivery, by_delivery.get(delivery.id, [])) for delivery in deliveries]

    async def webhook_delivery(self, tenant_id: uuid.UUID, message_id: uuid.UUID) -> WebhookDelivery | None:
        return await self._session.scalar(
            select(WebhookDelivery).where(
                WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.message_id == message_id
            )
        )

    async def redeliver_webhook(self, delivery_id: int) -> None:
        """Send again at once with a fresh retry schedule (the same ``webhook-id``)."""
        await self._session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(state="pending", attempts=0, next_attempt_at=func.now(), failed_at=None)
        )

    async def erase_customer_deliveries(self, tenant_id: uuid.UUID, customer_id: str) -> int:
        """Anonymise a customer's deliveries: the payload keeps only its type and time, the customer
        id and the answers' excerpts go (a receiver may echo what it was sent), and any not yet
        delivered will not be. Returns how many deliveries were anonymised."""
        ids = (
            await self._session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.customer_id == customer_id)
                .with_for_update()
            )
        ).all()
        if not ids:
            return 0
        await self._session.execute(
            update(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)).values(response_excerpt=None)
        )
        await self._session.execute(
            text(
                f"""
                UPDATE {SCHEMA}.webhook_deliveries SET
                    payload = jsonb_build_object('type', payload->'type', 'timestamp', payload->'timestamp',
                                                 'data', jsonb_build_object('erased', true)),
                    customer_id = NULL,
                    ordering_key = 'erased:' || id,
                    state = CASE WHEN state = 'pending' THEN 'failed' ELSE state END,
                    failed_at = CASE WHEN state = 'pending' THEN now() ELSE failed_at END,
                    last_error = CASE WHEN state = 'pending' THEN 'not sent: the customer was erased'
                                      ELSE last_error END
                WHERE id = ANY(:ids)
                """
            ),
            {"ids": list(ids)},
        )
        return len(ids)
