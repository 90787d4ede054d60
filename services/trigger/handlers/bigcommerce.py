"""Fetching the orders BigCommerce's thin webhooks name, then deciding them as any webhook is.

The receiving route only queues a row (``order_fetches``) in the delivery's transaction and answers
at once. :class:`OrderFetcher`, a job of the shared runner, claims due rows (``FOR UPDATE SKIP
LOCKED``, leased) in one short transaction, fetches each order and its customer with no
transaction open, and records the outcomes in another: the events go through ``handle_intake``
as the webhook route's do, a transient failure is retried with backoff
(``services/trigger/domain/fetching.py``), a permanent one is kept with its reason. A delivery
still queued when its receiver is revoked fails ("receiver revoked") without the store being called.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from prometheus_client import Counter

from libs.common.db import Database, UnitOfWork
from libs.common.events import InvalidEvent
from libs.common.jobs import Due, Job, claim_work_record
from libs.common.outbound import OutboundError, UnsafeUrl, get_json
from services.trigger.adapters import bigcommerce
from services.trigger.adapters.common import Ignored
from services.trigger.config import TriggerSettings
from services.trigger.domain.fetching import GiveUp, after_failure, retry_after_seconds
from services.trigger.handlers.intake import ACCEPTED_TYPES, handle_intake
from services.trigger.repository import ClaimedFetch, TriggerRepository

if TYPE_CHECKING:
    from libs.common.service import JobFactory

log = logging.getLogger("services.trigger.handlers")

FETCHES = Counter(
    "nps_trigger_order_fetches_total",
    "Order fetches of thin webhooks (BigCommerce), by outcome: decided, ignored, retried, failed",
    ["platform", "outcome"],
)
TIMEOUT_SECONDS = 10.0
_REASON_LIMIT = 300
#: Why a revoked receiver's queued deliveries end without their order being fetched.
REVOKED_REASON = "receiver revoked: its orders are no longer fetched"


@dataclass(frozen=True)
class Fetched:
    """What one claimed fetch brought back: the order and customer, or why not."""

    fetch: ClaimedFetch
    order: Any = None
    customers: Any = None
    error: OutboundError | None = None


async def fetch_order(
    client: httpx.AsyncClient, fetch: ClaimedFetch, *, api_url: str, allow_private: bool
) -> Fetched:
    if fetch.revoked:
        # The tenant withdrew the receiver, and with it the use of the store's token.
        return Fetched(fetch)
    base = f"{api_url.rstrip('/')}/stores/{quote(fetch.store_hash, safe='')}"
    headers = {"X-Auth-Token": fetch.access_token}
    try:
        order = await get_json(
            client,
            f"{base}/v2/orders/{quote(fetch.order_id, safe='')}",
            headers=headers,
            allow_private=allow_private,
            timeout=TIMEOUT_SECONDS,
        )
        customers: Any = None
        customer_id = order.get("customer_id") if isinstance(order, dict) else None
        # 0 is a guest checkout: no customer to look up.
        if isinstance(customer_id, int) and not isinstance(customer_id, bool) and customer_id > 0:
            customers = await get_json(
                client,
                f"{base}/v3/customers?id:in={customer_id}",
                headers=headers,
                allow_private=allow_private,
                timeout=TIMEOUT_SECONDS,
            )
    except UnsafeUrl as error:
        return Fetched(
            fetch, error=OutboundError(f"the store's API address is refused: {error}", retryable=False)
        )
    except OutboundError as error:
        return Fetched(fetch, error=error)
    return Fetched(fetch, order=order, customers=customers)


async def record_fetched(
    uow: UnitOfWork[TriggerRepository],
    outcomes: Sequence[Fetched],
    *,
    now: datetime,
    settings: TriggerSettings,
) -> None:
    repository = uow.repository
    for fetched in outcomes:
        fetch = fetched.fetch
        if fetch.revoked:
            await repository.finish_fetch(
                fetch.id, state="failed", attempts=fetch.attempts, reason=REVOKED_REASON, now=now
            )
            FETCHES.labels(bigcommerce.PLATFORM, "failed").inc()
            log.info("order_fetch.revoked", extra={"tenant_id": str(fetch.tenant_id)})
            continue
        attempts = fetch.attempts + 1
        if fetched.error is not None:
            await _failed(repository, fetched, fetched.error, attempts, now)
            continue
        try:
            mapped = bigcommerce.map_order(
                tenant_id=str(fetch.tenant_id),
                delivery_id=fetch.delivery_id,
                order=fetched.order,
                customers=fetched.customers,
                now=now,
            )
        except InvalidEvent as error:
            await repository.finish_fetch(
                fetch.id, state="failed", attempts=attempts, reason=_short(error.reason), now=now
            )
            FETCHES.labels(bigcommerce.PLATFORM, "failed").inc()
            continue
        decided = [] if isinstance(mapped, Ignored) else [e for e in mapped if e.type in ACCEPTED_TYPES]
        if not decided:
            reason = mapped.reason if isinstance(mapped, Ignored) else "no event the trigger decides"
            await repository.finish_fetch(
                fetch.id, state="ignored", attempts=attempts, reason=_short(reason), now=now
            )
            FETCHES.labels(bigcommerce.PLATFORM, "ignored").inc()
            continue
        await handle_intake(decided, uow, now=now, settings=settings)
        await repository.finish_fetch(fetch.id, state="decided", attempts=attempts, reason=None, now=now)
        FETCHES.labels(bigcommerce.PLATFORM, "decided").inc()
        log.info("order_fetch.decided", extra={"tenant_id": str(fetch.tenant_id), "attempts": attempts})


async def _failed(
    repository: TriggerRepository, fetched: Fetched, error: OutboundError, attempts: int, now: datetime
) -> None:
    fetch = fetched.fetch
    reason = _why(error)
    step = after_failure(
        attempts,
        now,
        retryable=error.retryable,
        reason=reason,
        retry_after=retry_after_seconds(error.retry_after, now),
    )
    fields = {"tenant_id": str(fetch.tenant_id), "attempts": attempts, "status": error.status}
    if isinstance(step, GiveUp):
        await repository.finish_fetch(
            fetch.id, state="failed", attempts=attempts, reason=_short(step.reason), now=now
        )
        FETCHES.labels(bigcommerce.PLATFORM, "failed").inc()
        log.warning("order_fetch.failed", extra=fields)
        return
    await repository.retry_fetch(fetch.id, attempts=attempts, reason=_short(reason), due_at=step.at)
    FETCHES.labels(bigcommerce.PLATFORM, "retried").inc()
    log.info("order_fetch.retrying", extra=fields)


def _why(error: OutboundError) -> str:
    """The reason a tenant reads: what the store said, and what it means for a refusal."""
    if error.status == 404:
        return f"{error.reason}: the store has no such order (or the store hash is wrong)"
    if error.status in (401, 403):
        return (
            f"{error.reason}: the store refused the API token "
            "(check it, and its Orders and Customers read-only scopes)"
        )
    return error.reason


def _short(reason: str) -> str:
    return reason[:_REASON_LIMIT]


class OrderFetcher(Job):
    """Fetch the orders thin webhooks named, a batch at a time, concurrently within a timeout each."""

    name = "order-fetcher"

    def __init__(self, database: Database[TriggerRepository], settings: TriggerSettings) -> None:
        self._database = database
        self._settings = settings
        self.batch_size = settings.order_fetch_batch_size
        self.every = settings.order_fetch_poll_seconds
        # Two requests per fetch, each within its timeout, and some slack: a claimer that is still
        # working never sees its rows claimed by another.
        self._lease = timedelta(seconds=TIMEOUT_SECONDS * 2 + 30)
        self._client = httpx.AsyncClient()

    async def run_once(self) -> int:
        async def claim(uow: UnitOfWork[TriggerRepository]) -> list[ClaimedFetch]:
            now = datetime.now(UTC)
            return await uow.repository.claim_fetches(
                now=now, lease_until=now + self._lease, limit=self.batch_size
            )

        async def work(fetches: Sequence[ClaimedFetch]) -> list[Fetched]:
            return list(
                await asyncio.gather(
                    *(
                        fetch_order(
                            self._client,
                            fetch,
                            api_url=self._settings.bigcommerce_api_url,
                            allow_private=self._settings.outbound_allow_private,
                        )
                        for fetch in fetches
                    )
                )
            )

        async def record(uow: UnitOfWork[TriggerRepository], outcomes: list[Fetched]) -> None:
            await record_fetched(uow, outcomes, now=datetime.now(UTC), settings=self._settings)

        return await claim_work_record(self._database, claim, work, record)

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            oldest, items = await uow.repository.fetch_queue(datetime.now(UTC))
        return Due(oldest, items)

    async def drain(self) -> None:
        await self._client.aclose()


def order_fetch_job(settings: TriggerSettings) -> JobFactory:
    return lambda runtime: OrderFetcher(runtime.database, settings)
