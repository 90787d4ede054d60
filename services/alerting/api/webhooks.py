"""HTTP routes of outbound webhooks: a tenant's endpoints (subscribe, change, rotate the secret,
ping), the delivery log and manual redelivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.common.db import UnitOfWork
from libs.common.deps import Tenant, settings_of, unit_of_work
from libs.common.http import error_body, error_responses
from libs.common.outbound import OutboundError, UnsafeUrl, check_webhook_url, resolve_public
from services.alerting.config import AlertingSettings
from services.alerting.domain import webhooks as rules
from services.alerting.handlers.webhooks import delivery_row
from services.alerting.models import WebhookEndpoint
from services.alerting.repository import AlertingRepository
from services.alerting.repository_webhooks import LoggedDelivery

router = APIRouter(tags=["webhooks"])

Uow = Annotated[UnitOfWork[AlertingRepository], Depends(unit_of_work)]
Config = Annotated[AlertingSettings, Depends(settings_of(AlertingSettings))]
EventType = Literal[
    "response.recorded",
    "response.updated",
    "case.opened",
    "case.updated",
    "case.breached",
    "case.resolved",
    "nps.changed",
    "recovery.measured",
]
DEFAULT_PORTS = {"https": 443, "http": 80}


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="a public `https://` URL")
    event_types: list[EventType] = Field(min_length=1, max_length=8, description="what the endpoint hears of")
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=8)
    description: str | None = Field(default=None, max_length=500)
    #: Enabling clears ``disabled_reason``; deliveries that waited are then sent.
    enabled: bool | None = None


class EndpointView(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="why the platform disabled it, if it did")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointView:
        return cls(
            id=row.id,
            url=row.url,
            event_types=list(row.event_types),
            description=row.description,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EndpointWithSecret(EndpointView):
    secret: str = Field(description="`whsec_...`: shown once; verify deliveries with it")


class Endpoints(BaseModel):
    endpoints: list[EndpointView]


class Rotated(BaseModel):
    secret: str = Field(description="the new secret; shown once")
    previous_secret_expires_at: datetime = Field(description="until then, the old secret signs too")


class AttemptView(BaseModel):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str | None = Field(description="at most 1 KB of the answer")


class DeliveryView(BaseModel):
    id: uuid.UUID = Field(description="also the `webhook-id` (as `msg_<hex>`)")
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    payload: dict[str, object]
    attempts: list[AttemptView]

    @classmethod
    def of(cls, logged: LoggedDelivery) -> DeliveryView:
        row = logged.delivery
        return cls(
            id=row.message_id,
            event_type=row.event_type,
            state=row.state,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
            delivered_at=row.delivered_at,
            failed_at=row.failed_at,
            last_error=row.last_error,
            payload=row.payload,
            attempts=[
                AttemptView(
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=round(attempt.duration_seconds * 1000),
                    response_excerpt=attempt.response_excerpt,
                )
                for attempt in logged.attempts
            ],
        )


class Deliveries(BaseModel):
    deliveries: list[DeliveryView] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


class Queued(BaseModel):
    id: uuid.UUID
    state: Literal["pending"] = "pending"


async def _checked_url(url: str, settings: AlertingSettings) -> str:
    """The URL normalised, or a 422 naming why it is refused: not https, a private address, or a
    name that resolves to one now (checked again at every attempt, for DNS rebinding)."""
    allow = settings.outbound_allow_private
    try:
        checked = check_webhook_url(url, allow_private=allow)
        parsed = httpx.URL(checked)
        await resolve_public(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme], allow_private=allow)
    except UnsafeUrl as error:
        raise HTTPException(
            422,
            error_body("unsafe_url", f"url refused: {error}", [{"field": "body.url", "message": str(error)}]),
        ) from None
    except OutboundError:
        # A name that does not resolve yet (a new DNS record) is taken; every attempt checks again.
        pass
    return checked


async def _endpoint(uow: Uow, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    row = await uow.repository.webhook_endpoint(tenant_id, endpoint_id)
    if row is None:
        raise HTTPException(404, f"no webhook endpoint {endpoint_id}")
    return row


@router.post("/v1/webhook-endpoints", status_code=201, responses=error_responses(422))
async def create_endpoint(tenant: Tenant, uow: Uow, settings: Config, body: EndpointIn) -> EndpointWithSecret:
    """Subscribe a URL to event types. Deliveries are signed per Standard Webhooks (`webhook-id`,
    `webhook-timestamp`, `webhook-signature`) with the secret in this answer, which is shown only
    now. Only public `https://` targets are taken: one that is or resolves to a loopback, private,
    link-local or metadata address answers 422 (and is refused again at every attempt)."""
    url = await _checked_url(body.url, settings)
    now = datetime.now(UTC)
    row = WebhookEndpoint(
        id=uuid.uuid4(),
        tenant_id=tenant.tenant_id,
        url=url,
        description=body.description,
        event_types=sorted(set(body.event_types)),
        enabled=body.enabled,
        secret=rules.new_secret(),
        created_at=now,
        updated_at=now,
    )
    await uow.repository.insert_webhook_endpoint(row)
    await uow.commit()
    return EndpointWithSecret(**EndpointView.of(row).model_dump(), secret=row.secret)


@router.get("/v1/webhook-endpoints")
async def list_endpoints(tenant: Tenant, uow: Uow) -> Endpoints:
    """The tenant's endpoints, oldest first (never their secrets)."""
    rows = await uow.repository.webhook_endpoints(tenant.tenant_id)
    return Endpoints(endpoints=[EndpointView.of(row) for row in rows])


@router.get("/v1/webhook-endpoints/{endpoint_id}", responses=error_responses(404))
async def get_endpoint(tenant: Tenant, uow: Uow, endpoint_id: uuid.UUID) -> EndpointView:
    """One endpoint, with `disabled_reason` when the platform disabled it."""
    return EndpointView.of(await _endpoint(uow, tenant.tenant_id, endpoint_id))


@router.patch("/v1/webhook-endpoints/{endpoint_id}", responses=error_responses(404, 422))
async def patch_endpoint(
    tenant: Tenant, uow: Uow, settings: Config, endpoint_id: uuid.UUID, body: EndpointPatch
) -> EndpointView:
    """Change an endpoint's URL, event types, description or whether it is enabled. Enabling a
    disabled endpoint clears its `disabled_reason` and sends the deliveries that waited."""
    row = await _endpoint(uow, tenant.tenant_id, endpoint_id)
    if body.url is not None:
        row.url = await _checked_url(body.url, settings)
    if body.event_types is not None:
        row.event_types = sorted(set(body.event_types))
    if "description" in body.model_fields_set:
        row.description = body.description
    if body.enabled is not None:
        if body.enabled and not row.enabled:
            row.disabled_reason = None
            row.failing_since = None
        row.enabled = body.enabled
    row.updated_at = datetime.now(UTC)
    view = EndpointView.of(row)
    await uow.commit()
    return view


@router.delete("/v1/webhook-endpoints/{endpoint_id}", status_code=204, responses=error_responses(404))
async def delete_endpoint(tenant: Tenant, uow: Uow, endpoint_id: uuid.UUID) -> Response:
    """Delete an endpoint, with its deliveries and their log."""
    if not await uow.repository.delete_webhook_endpoint(tenant.tenant_id, endpoint_id):
        raise HTTPException(404, f"no webhook endpoint {endpoint_id}")
    await uow.commit()
    return Response(status_code=204)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", responses=error_responses(404))
async def rotate_secret(tenant: Tenant, uow: Uow, endpoint_id: uuid.UUID) -> Rotated:
    """Make a new signing secret. For 24 hours every delivery carries two signatures (the new
    secret's and the old one's, space-separated in `webhook-signature`), so receivers can switch
    over without missing one; then only the new one signs."""
    row = await _endpoint(uow, tenant.tenant_id, endpoint_id)
    now = datetime.now(UTC)
    row.previous_secret, row.secret = row.secret, rules.new_secret()
    row.previous_secret_until = now + rules.ROTATION_OVERLAP
    row.updated_at = now
    rotated = Rotated(secret=row.secret, previous_secret_expires_at=row.previous_secret_until)
    await uow.commit()
    return rotated


@router.post("/v1/webhook-endpoints/{endpoint_id}/ping", status_code=202, responses=error_responses(404, 409))
async def ping_endpoint(tenant: Tenant, uow: Uow, endpoint_id: uuid.UUID) -> Queued:
    """Queue a `webhook.ping` delivery to the endpoint, sent and logged like any other."""
    row = await _endpoint(uow, tenant.tenant_id, endpoint_id)
    if not row.enabled:
        raise HTTPException(409, error_body("endpoint_disabled", "the endpoint is disabled; enable it first"))
    item = rules.ping(str(row.id), datetime.now(UTC), uuid.uuid4().hex)
    queued = delivery_row(row.id, tenant.tenant_id, item)
    await uow.repository.queue_webhook_deliveries([queued])
    await uow.commit()
    return Queued(id=queued["message_id"])


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", responses=error_responses(404, 422))
async def list_deliveries(
    tenant: Tenant,
    uow: Uow,
    endpoint_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=18, pattern=r"^[0-9]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Deliveries:
    """The endpoint's deliveries, newest first, each with its attempts: when, the status code or
    the error (a timeout, a refused target), how long it took and up to 1 KB of the answer."""
    await _endpoint(uow, tenant.tenant_id, endpoint_id)
    logged = await uow.repository.webhook_delivery_log(
        endpoint_id, int(cursor) if cursor else None, limit + 1
    )
    page = logged[:limit]
    more = len(logged) > limit
    return Deliveries(
        deliveries=[DeliveryView.of(item) for item in page],
        next_cursor=str(page[-1].delivery.id) if more and page else None,
    )


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/redeliver", status_code=202, responses=error_responses(404, 409)
)
async def redeliver(tenant: Tenant, uow: Uow, delivery_id: uuid.UUID) -> Queued:
    """Send a delivery again now, with the same `webhook-id` and a fresh retry schedule (whether it
    was delivered or failed). Its customer's later deliveries wait for it, as they would have."""
    row = await uow.repository.webhook_delivery(tenant.tenant_id, delivery_id)
    if row is None:
        raise HTTPException(404, f"no webhook delivery {delivery_id}")
    endpoint = await _endpoint(uow, tenant.tenant_id, row.endpoint_id)
    if not endpoint.enabled:
        raise HTTPException(409, error_body("endpoint_disabled", "the endpoint is disabled; enable it first"))
    await uow.repository.redeliver_webhook(row.id)
    await uow.commit()
    return Queued(id=row.message_id)
