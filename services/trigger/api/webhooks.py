"""HTTP routes for native webhooks: endpoints a tenant configures (API key), and the receiving
route each platform posts to (no API key: the endpoint id names the tenant, the signature proves
the sender)."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from libs.common.db import UnitOfWork
from libs.common.deps import Tenant, UoW
from libs.common.events import Contract, Event, InvalidEvent
from libs.common.http import error_body, error_responses, invalid_request
from services.trigger import adapters, handlers
from services.trigger.adapters import bigcommerce, generic
from services.trigger.adapters.common import Headers, parse_json
from services.trigger.api.dependencies import TriggerConfig
from services.trigger.config import TriggerSettings
from services.trigger.models import BigCommerceStore, WebhookEndpoint
from services.trigger.repository import TriggerRepository

# The logger keeps the name it had before the routes became a package: log queries filter on it.
log = logging.getLogger("services.trigger.webhook_api")
router = APIRouter(tags=["webhooks"])

WEBHOOKS = Counter(
    "nps_trigger_webhooks_total",
    "Webhook deliveries received, by platform and outcome (accepted, ignored, unauthorized, invalid)",
    ["platform", "outcome"],
)

Platform = Literal[
    "shopify",
    "woocommerce",
    "zendesk",
    "freshdesk",
    "generic",
    "stripe",
    "intercom",
    "zammad",
    "helpscout",
    "bigcommerce",
]
_ID_LIMIT = 64
_DELIVERIES_LIMIT = 100


def url_path(platform: str, endpoint_id: str) -> str:
    return f"/v1/hooks/{platform}/{endpoint_id}"


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: Platform
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=512,
        description="Shopify: the app's client secret; Zendesk: the webhook's signing secret; "
        "Stripe: the endpoint's signing secret (whsec_...); Intercom: the app's client secret. "
        "WooCommerce, Freshdesk, Zammad, Help Scout and generic: left out, one is generated.",
    )
    mapping: dict[str, Any] | None = Field(
        default=None, description="generic only: event_type, id, fields and signature"
    )
    store_hash: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]{1,64}$",
        description="bigcommerce only: the store hash (``stores/{store_hash}`` in the API path)",
    )
    access_token: str | None = Field(
        default=None,
        min_length=8,
        max_length=512,
        description="bigcommerce only: an API token (X-Auth-Token) with Orders and Customers read-only "
        "scopes; it is never shown again",
    )


@router.post("/v1/webhooks", status_code=201)
async def create_webhook(tenant: Tenant, uow: UoW, body: NewWebhook) -> dict[str, Any]:
    """Configure a webhook receiver. The answer holds the path to give the platform and the secret
    it signs with; the secret is never shown again."""
    mapping: dict[str, Any] | None = None
    if body.platform == "generic":
        if body.mapping is None:
            raise HTTPException(422, invalid_request("mapping: a generic webhook needs a mapping"))
        try:
            mapping = generic.parse_mapping(body.mapping).model_dump(mode="json", exclude_none=True)
        except generic.MappingError as error:
            raise HTTPException(422, invalid_request(error.problem)) from None
    elif body.mapping is not None:
        raise HTTPException(
            422, invalid_request(f"mapping: only a generic webhook takes a mapping, not {body.platform}")
        )
    _check_store(body)
    secret = body.secret
    if secret is None:
        if body.platform not in adapters.GENERATES_SECRET:
            raise HTTPException(
                422,
                invalid_request(f"secret: {body.platform} signs with a secret it issues, send it as secret"),
            )
        secret = secrets.token_urlsafe(adapters.SECRET_BYTES.get(body.platform, 32))
    endpoint_id = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    repository: TriggerRepository = uow.repository
    await repository.insert_endpoint(
        WebhookEndpoint(
            id=endpoint_id,
            tenant_id=tenant.tenant_id,
            platform=body.platform,
            secret=secret,
            mapping=mapping,
            created_at=now,
        )
    )
    created: dict[str, Any] = {}
    if body.store_hash is not None and body.access_token is not None:
        await repository.insert_store(
            BigCommerceStore(
                endpoint_id=endpoint_id,
                tenant_id=tenant.tenant_id,
                store_hash=body.store_hash,
                access_token=body.access_token,
                created_at=now,
            )
        )
        created["store_hash"] = body.store_hash
    await uow.commit()
    log.info("webhook.created", extra={"tenant_id": tenant.id, "platform": body.platform})
    return {
        "id": endpoint_id,
        "platform": body.platform,
        "url_path": url_path(body.platform, endpoint_id),
        "secret": secret,
        "mapping": mapping,
        "created_at": now.isoformat(),
        **created,
    }


def _check_store(body: NewWebhook) -> None:
    """A BigCommerce receiver needs the store it fetches orders from; no other platform takes one."""
    if body.platform == "bigcommerce":
        for field in ("store_hash", "access_token"):
            if getattr(body, field) is None:
                raise HTTPException(
                    422, invalid_request(f"{field}: a bigcommerce webhook fetches its orders, it needs one")
                )
    elif body.store_hash is not None or body.access_token is not None:
        raise HTTPException(
            422, invalid_request(f"store_hash: only a bigcommerce webhook takes a store, not {body.platform}")
        )


@router.get("/v1/webhooks/{endpoint_id}/deliveries", responses=error_responses(404))
async def webhook_deliveries(tenant: Tenant, uow: UoW, endpoint_id: str) -> dict[str, Any]:
    """The latest deliveries of a receiver whose orders are fetched (BigCommerce), newest first, and
    what came of each: `queued` (with its attempts and the last reason), `decided`, `ignored` or
    `failed`, with the reason."""
    repository: TriggerRepository = uow.repository
    if len(endpoint_id) > _ID_LIMIT or not any(
        row.id == endpoint_id for row in await repository.active_endpoints(tenant.tenant_id)
    ):
        raise HTTPException(404, "no active webhook with that id")
    rows = await repository.fetches_of(tenant.tenant_id, endpoint_id, _DELIVERIES_LIMIT)
    return {
        "deliveries": [
            {
                "id": f"{row.platform}:{row.delivery_id}",
                "scope": row.scope,
                "order_id": row.order_id,
                "state": row.state,
                "attempts": row.attempts,
                "reason": row.reason,
                "received_at": row.received_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            }
            for row in rows
        ]
    }


@router.get("/v1/webhooks")
async def list_webhooks(tenant: Tenant, uow: UoW) -> dict[str, Any]:
    """The tenant's active webhook receivers. Secrets are never listed."""
    repository: TriggerRepository = uow.repository
    rows = await repository.active_endpoints(tenant.tenant_id)
    return {
        "webhooks": [
            {
                "id": row.id,
                "platform": row.platform,
                "url_path": url_path(row.platform, row.id),
                "mapping": row.mapping,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]
    }


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204)
async def delete_webhook(tenant: Tenant, uow: UoW, endpoint_id: str) -> Response:
    """Revoke a receiver: deliveries to it are refused from now on."""
    repository: TriggerRepository = uow.repository
    if not await repository.revoke_endpoint(tenant.tenant_id, endpoint_id, datetime.now(UTC)):
        raise HTTPException(404, "no active webhook with that id")
    await uow.commit()
    return Response(status_code=204)


@router.post("/v1/hooks/{platform}/{endpoint_id}", tags=["intake"], responses=error_responses(400, 401))
async def receive_webhook(
    platform: str, endpoint_id: str, request: Request, uow: UoW, settings: TriggerConfig
) -> JSONResponse:
    """Where Shopify, WooCommerce, Zendesk, Freshdesk, Stripe, Intercom, Zammad, Help Scout,
    BigCommerce or a generic sender posts.

    The signature is checked over the raw body before anything is parsed: a missing, wrong or
    stale one gets 401 and changes nothing. A delivery that asks nothing of us (a topic or status
    we do not act on, WooCommerce's or Intercom's ping) gets 200 with `ignored` and the reason; one
    that maps to events gets 200 with a result per event, as `POST /v1/events` gives them. A
    retried delivery is reported as `duplicate`. BigCommerce names an order without its contents: a
    genuine delivery is queued and answered `{"queued": {...}}` at once; the order is fetched and
    decided afterwards (see `GET /v1/webhooks/{id}/deliveries`).
    """
    body = await request.body()
    if platform not in adapters.PLATFORMS or len(endpoint_id) > _ID_LIMIT:
        raise HTTPException(404, "no such webhook endpoint")
    repository: TriggerRepository = uow.repository
    endpoint = await repository.active_endpoint(endpoint_id, platform)
    if endpoint is None:
        WEBHOOKS.labels(platform, "unauthorized").inc()
        raise HTTPException(404, "no such webhook endpoint")
    tenant_id = str(endpoint.tenant_id)
    headers = request.headers
    if adapters.is_ping(platform, headers, body):
        return _ignored(platform, tenant_id, "ping")
    now = datetime.now(UTC)
    mapping = adapters.mapping_of(platform, endpoint.mapping)
    _verify(platform, tenant_id, endpoint.secret, headers, body, now, mapping)
    try:
        delivery = adapters.Delivery(
            tenant_id=tenant_id, headers=headers, body=body, payload=parse_json(body), now=now
        )
        mapped: adapters.MapResult | bigcommerce.OrderNotice = (
            bigcommerce.notice(delivery)
            if platform in adapters.THIN_PLATFORMS
            else adapters.map_delivery(platform, delivery, mapping)
        )
    except adapters.NotJson as error:
        return _invalid(platform, tenant_id, 400, "invalid_json", error.reason)
    except InvalidEvent as error:
        return _invalid(platform, tenant_id, 422, "invalid_payload", error.reason)
    if isinstance(mapped, bigcommerce.OrderNotice):
        return await _queue(platform, endpoint, mapped, uow, now)
    if isinstance(mapped, adapters.Ignored):
        return _ignored(platform, tenant_id, mapped.reason)
    return await _decide(platform, tenant_id, mapped, uow, now, settings)


def _verify(
    platform: str,
    tenant_id: str,
    secret: str,
    headers: Headers,
    body: bytes,
    now: datetime,
    mapping: generic.GenericMapping | None,
) -> None:
    """Check the delivery's signature over the raw body; 401 when it is missing, wrong or stale."""
    try:
        adapters.verify(platform, secret, headers, body, now, mapping)
    except adapters.Unauthorized as error:
        WEBHOOKS.labels(platform, "unauthorized").inc()
        log.info(
            "webhook.unauthorized",
            extra={"tenant_id": tenant_id, "platform": platform, "reason": error.reason},
        )
        raise HTTPException(401, error.reason) from None


async def _decide(
    platform: str,
    tenant_id: str,
    mapped: list[Event[Contract]],
    uow: UnitOfWork[TriggerRepository],
    now: datetime,
    settings: TriggerSettings,
) -> JSONResponse:
    """Decide the delivery's events as ``POST /v1/events`` does, and commit."""
    # The rules decide only some intake types; the others are answered, not dropped silently.
    decided = [event for event in mapped if event.type in handlers.ACCEPTED_TYPES]
    undecided = [
        {"id": event.id, "status": "ignored", "reason": f"{event.type} is not decided by the trigger"}
        for event in mapped
        if event.type not in handlers.ACCEPTED_TYPES
    ]
    if not decided:
        return _ignored(platform, tenant_id, "; ".join(item["reason"] for item in undecided) or "no event")
    outcomes = await handlers.handle_intake(decided, uow, now=now, settings=settings)
    await uow.commit()
    WEBHOOKS.labels(platform, "accepted").inc()
    results = [outcome.as_result() for outcome in outcomes]
    log.info(
        "webhook.accepted",
        extra={
            "tenant_id": tenant_id,
            "platform": platform,
            "events": len(results),
            "duplicates": sum(1 for result in results if result["status"] == "duplicate"),
        },
    )
    return JSONResponse({"results": results + undecided})


async def _queue(
    platform: str,
    endpoint: WebhookEndpoint,
    notice: bigcommerce.OrderNotice,
    uow: UnitOfWork[TriggerRepository],
    now: datetime,
) -> JSONResponse:
    """Record the order to fetch, in this request's transaction, and answer at once: the store's
    API is called by the order fetcher job, never while BigCommerce waits (it blocklists slow
    receivers)."""
    repository: TriggerRepository = uow.repository
    queued = await repository.queue_fetch(
        tenant_id=endpoint.tenant_id,
        endpoint_id=endpoint.id,
        platform=platform,
        delivery_id=notice.delivery_id,
        scope=notice.scope,
        order_id=notice.order_id,
        now=now,
    )
    await uow.commit()
    status = "queued" if queued else "duplicate"
    WEBHOOKS.labels(platform, "accepted").inc()
    log.info(
        "webhook.queued",
        extra={"tenant_id": str(endpoint.tenant_id), "platform": platform, "duplicate": not queued},
    )
    return JSONResponse(
        {"queued": {"id": f"{platform}:{notice.delivery_id}", "order_id": notice.order_id, "status": status}}
    )


def _ignored(platform: str, tenant_id: str, reason: str) -> JSONResponse:
    WEBHOOKS.labels(platform, "ignored").inc()
    log.info("webhook.ignored", extra={"tenant_id": tenant_id, "platform": platform, "reason": reason})
    return JSONResponse({"ignored": reason})


def _invalid(platform: str, tenant_id: str, status: int, error: str, reason: str) -> JSONResponse:
    WEBHOOKS.labels(platform, "invalid").inc()
    # The reason names a field and a rule; it never quotes a value from the body.
    log.info("webhook.invalid", extra={"tenant_id": tenant_id, "platform": platform, "status": status})
    return JSONResponse(status_code=status, content=error_body(error, reason))
