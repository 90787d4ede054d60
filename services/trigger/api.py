"""HTTP routes of the trigger: event intake, decisions, policy, and the tenant admin API."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from libs.common.events import Contract, Email, Event, InvalidEvent, validate
from libs.common.http import Tenant, UoW, error_body, error_responses, runtime_of
from services.trigger import handlers, repository
from services.trigger.config import TriggerSettings
from services.trigger.domain.touchpoints import DEFAULT_TOUCHPOINTS
from services.trigger.models import Touchpoint
from services.trigger.schemas import TOUCHPOINT_NAME, TouchpointConfig

router = APIRouter()
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _settings(request: Request) -> TriggerSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, TriggerSettings)
    return settings


Settings = Annotated[TriggerSettings, Depends(_settings)]

EVENTS_EXAMPLE = {
    "specversion": "1.0",
    "id": "order-10001-paid",
    "source": "/shop/acme",
    "type": "purchase.completed.v1",
    "subject": "customer-42",
    "data": {
        "order_id": "10001",
        "customer_id": "customer-42",
        "email": "jane@example.com",
        "locale": "da-DK",
    },
}


@router.post(
    "/v1/events",
    status_code=202,
    tags=["intake"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                    "examples": {"one": {"value": EVENTS_EXAMPLE}, "batch": {"value": [EVENTS_EXAMPLE]}},
                }
            },
        }
    },
)
async def post_events(tenant: Tenant, uow: UoW, settings: Settings, request: Request) -> JSONResponse:
    """Take one CloudEvent, or a JSON array of up to 1,000: `purchase.completed.v1`,
    `ticket.closed.v1` (decided: invite or not), `order.cancelled.v1` (withdraws a pending
    invitation), `customer.upserted.v1`, `customer.unsubscribed.v1`, `customer.resubscribed.v1`.

    `tenantid` may be left out: the API key says which tenant the events belong to. Each event gets
    a result in the order sent: `accepted` with the decision (`invited`, or `skipped` and a reason),
    `duplicate` when its id was seen before, or `rejected` with the problem. Answers 202 when at
    least one event was accepted or was a duplicate, 422 when every event was rejected.
    """
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None
    single = isinstance(body, dict)
    if not single and not isinstance(body, list):
        raise HTTPException(422, "body must be a CloudEvent object or a JSON array of them")
    raw_events: list[Any] = [body] if single else body
    if not raw_events:
        raise HTTPException(422, "the batch is empty: send at least one event")
    if len(raw_events) > settings.max_batch_events:
        raise HTTPException(
            413, f"the batch has {len(raw_events)} events; at most {settings.max_batch_events} are accepted"
        )
    results: list[dict[str, Any] | None] = [None] * len(raw_events)
    valid: list[tuple[int, Event[Contract]]] = []
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            results[index] = {
                "id": None,
                "status": "rejected",
                "error": f"[{index}]: event must be a JSON object",
            }
            continue
        claimed = raw.get("tenantid")
        if claimed is not None and claimed != tenant.id:
            results[index] = _rejected(raw, "tenantid: does not match the tenant of the API key")
            continue
        try:
            valid.append(
                (index, validate({**raw, "tenantid": tenant.id}, allowed_types=handlers.ACCEPTED_TYPES))
            )
        except InvalidEvent as error:
            results[index] = _rejected(raw, error.reason)
    if valid:
        outcomes = await handlers.handle_intake(
            [event for _, event in valid],
            uow,
            now=datetime.now(UTC),
            settings=settings,
        )
        await uow.commit()
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            results[index] = outcome.as_result()
    final = [result for result in results if result is not None]
    counts = {
        status: sum(1 for r in final if r["status"] == status)
        for status in ("accepted", "duplicate", "rejected")
    }
    if not valid:
        problems = [_problem(None if single else index, r["error"]) for index, r in enumerate(final)]
        return JSONResponse(status_code=422, content=error_body("invalid_event", "", problems))
    return JSONResponse(status_code=202, content={**counts, "results": final})


def _problem(index: int | None, reason: str) -> dict[str, str]:
    """A rejected event as one problem: the field its reason names first, e.g. ``[2].data.email``."""
    prefix = "" if index is None else f"[{index}]"
    if reason.startswith(prefix):
        reason = reason[len(prefix) :].lstrip(":").strip()
    location, separator, message = reason.partition(": ")
    if not separator or " " in location:
        return {"field": prefix or "body", "message": reason}
    return {"field": f"{prefix}.{location}" if prefix else location, "message": message}


def _rejected(raw: dict[str, Any], reason: str) -> dict[str, Any]:
    event_id = raw.get("id")
    return {"id": event_id if isinstance(event_id, str) else None, "status": "rejected", "error": reason}


class DecisionView(BaseModel):
    event_id: str
    event_type: str
    touchpoint: str | None
    touchpoint_version: int | None
    outcome: str
    reason: str | None
    invitation_id: str | None
    rest_until: datetime | None
    send_at: datetime | None
    detail: str | None
    rest_period_days: int
    decided_at: datetime


@router.get("/v1/decisions", tags=["intake"])
async def get_decisions(
    tenant: Tenant,
    uow: UoW,
    customer: Annotated[str, Query(min_length=1, max_length=200, description="the customer id")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A customer's decisions, newest first: `invited`, `delayed` (with `send_at`), `skipped` with a
    `reason` (`rest_period`, `sampled_out`, `unsubscribed`, `no_email`, `duplicate`, `filtered`,
    `cancelled`, `quota`) and a `detail`, `cancelled` or `recorded` for consent and cancellation
    events, each with the touchpoint version it used."""
    rows = await repository.decisions_for_customer(uow.session, tenant.tenant_id, customer, limit)
    return {
        "customer": customer,
        "decisions": [
            DecisionView(
                event_id=row.event_id,
                event_type=row.event_type,
                touchpoint=row.touchpoint,
                touchpoint_version=row.touchpoint_version,
                outcome=row.outcome,
                reason=row.reason,
                invitation_id=str(row.invitation_id) if row.invitation_id else None,
                rest_until=row.rest_until,
                send_at=row.send_at,
                detail=row.detail,
                rest_period_days=row.rest_period_days,
                decided_at=row.decided_at,
            ).model_dump(mode="json")
            for row in rows
        ],
    }


class DryRunView(BaseModel):
    id: str
    outcome: str = Field(description="invited, delayed, skipped, cancelled, recorded, or duplicate")
    reason: str | None
    detail: str | None
    touchpoint: str | None
    send_at: datetime | None
    rest_until: datetime | None


@router.post(
    "/v1/decisions/dry-run",
    tags=["intake"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}, "example": EVENTS_EXAMPLE}},
        }
    },
)
async def dry_run_decision(tenant: Tenant, uow: UoW, settings: Settings, request: Request) -> DryRunView:
    """What would happen to one CloudEvent (as for `POST /v1/events`; `tenantid` optional) if it
    arrived now: the outcome, reason, detail, touchpoint and send time, decided by the same code on
    the tenant's real state and rules. Nothing is recorded: no decision, no rest-period clock, no
    claim of the event id, no invitation. `duplicate` when the event id was seen before."""
    try:
        raw = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise HTTPException(422, "body must be one CloudEvent object")
    claimed = raw.get("tenantid")
    if claimed is not None and claimed != tenant.id:
        raise HTTPException(422, "tenantid: does not match the tenant of the API key")
    try:
        event = validate({**raw, "tenantid": tenant.id}, allowed_types=handlers.ACCEPTED_TYPES)
    except InvalidEvent as error:
        raise HTTPException(422, error.reason) from None
    [outcome] = await handlers.handle_intake(
        [event], uow, now=datetime.now(UTC), settings=settings, dry_run=True
    )
    # Never committed: leaving the unit of work rolls every write of that decision back.
    await uow.session.rollback()
    decision = outcome.decision
    if decision is None:
        return DryRunView(
            id=event.id,
            outcome="duplicate",
            reason=None,
            detail=None,
            touchpoint=None,
            send_at=None,
            rest_until=None,
        )
    return DryRunView(
        id=event.id,
        outcome=decision.outcome.value,
        reason=decision.reason.value if decision.reason else None,
        detail=decision.detail,
        touchpoint=decision.touchpoint.name if decision.touchpoint else None,
        send_at=decision.send_at,
        rest_until=decision.rest_until,
    )


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rest_period_days: int = Field(ge=0, le=3650, description="days before a customer may be asked again")
    rest_clock: Literal["invitation", "response"] = Field(
        default="invitation",
        description="count the rest period from the last invitation or the last response",
    )


@router.get("/v1/policy", tags=["rules"])
async def get_policy(tenant: Tenant, uow: UoW, settings: Settings) -> dict[str, Any]:
    """The tenant-wide rules: the rest period and what its clock counts from."""
    days, clock = (await repository.policies(uow.session, [tenant.tenant_id])).get(
        tenant.tenant_id, (settings.default_rest_period_days, "invitation")
    )
    return {"rest_period_days": days, "rest_clock": clock}


@router.put("/v1/policy", tags=["rules"])
async def put_policy(tenant: Tenant, uow: UoW, body: PolicyBody) -> dict[str, Any]:
    """Change the tenant-wide rules. They apply to decisions made from now on."""
    await repository.set_rest_period(uow.session, tenant.tenant_id, body.rest_period_days, body.rest_clock)
    await uow.commit()
    return body.model_dump()


class TouchpointView(BaseModel):
    name: str
    version: int
    config: dict[str, Any]
    created_at: datetime | None
    retired_at: datetime | None = None
    built_in: bool = False


def _view(row: Touchpoint) -> TouchpointView:
    return TouchpointView(
        name=row.name,
        version=row.version,
        config=row.config,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


TouchpointName = Annotated[str, Path(pattern=TOUCHPOINT_NAME, description="e.g. webshop-purchase")]


@router.get("/v1/touchpoints", tags=["rules"])
async def list_touchpoints(tenant: Tenant, uow: UoW) -> dict[str, Any]:
    """The tenant's touchpoints in their current versions. A tenant that has configured none gets
    the built-in ones (`webshop-purchase`, `support-ticket`, version 0)."""
    rows = await repository.active_touchpoints(uow.session, tenant.tenant_id)
    if rows:
        return {"touchpoints": [_view(row).model_dump(mode="json") for row in rows]}
    built_in = [
        TouchpointView(
            name=rule.name,
            version=0,
            config={"event_types": sorted(rule.event_types)},
            created_at=None,
            built_in=True,
        ).model_dump(mode="json")
        for rule in DEFAULT_TOUCHPOINTS
    ]
    return {"touchpoints": built_in}


@router.put("/v1/touchpoints/{name}", tags=["rules"])
async def put_touchpoint(
    tenant: Tenant, uow: UoW, name: TouchpointName, body: TouchpointConfig
) -> dict[str, Any]:
    """Create or change a touchpoint. Every change is a new version; decisions made afterwards
    name it, earlier decisions keep theirs. Once a tenant has a touchpoint of its own, the built-in
    ones no longer apply: `warnings` says so when the change leaves `purchase.completed.v1` or
    `ticket.closed.v1` taken by no touchpoint (such events are then `filtered`)."""
    config = body.model_dump(mode="json", exclude_none=True)
    version, warnings = await handlers.set_touchpoint(uow, tenant.tenant_id, name, config, datetime.now(UTC))
    await uow.commit()
    return {"name": name, "version": version, "config": config, "warnings": warnings}


@router.get("/v1/touchpoints/{name}/versions", tags=["rules"])
async def touchpoint_history(tenant: Tenant, uow: UoW, name: TouchpointName) -> dict[str, Any]:
    """Every version of a touchpoint, newest first."""
    rows = await repository.touchpoint_versions(uow.session, tenant.tenant_id, name)
    if not rows:
        raise HTTPException(404, f"no touchpoint {name!r}")
    return {"name": name, "versions": [_view(row).model_dump(mode="json") for row in rows]}


@router.delete("/v1/touchpoints/{name}", status_code=204, tags=["rules"])
async def retire_touchpoint(tenant: Tenant, uow: UoW, name: TouchpointName) -> Response:
    """Retire a touchpoint: it takes no more events. Its versions stay, for the decisions that used them."""
    if not await repository.retire_touchpoint(uow.session, tenant.tenant_id, name, datetime.now(UTC)):
        raise HTTPException(404, f"no active touchpoint {name!r}")
    await uow.commit()
    return Response(status_code=204)


# --- Admin --------------------------------------------------------------------------------------


_admin_token = APIKeyHeader(
    name="X-Admin-Token", auto_error=False, scheme_name="AdminToken", description="the platform's admin token"
)


async def require_admin(request: Request, token: Annotated[str | None, Security(_admin_token)]) -> None:
    presented = token or ""
    expected = runtime_of(request).settings.admin_token.get_secret_value()
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong admin token: send 'X-Admin-Token'")


Admin = Annotated[None, Depends(require_admin)]


DisplayName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    owner_email: Email | None = Field(default=None, description="who gets follow-up cases by default")
    display_name: DisplayName | None = Field(
        default=None,
        description="how emails and pages name the company, e.g. 'Acme Inc.'; the name if left out",
    )


class TenantChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName | None = Field(default=None, description="null removes it")
    owner_email: Email | None = Field(default=None, description="null removes it")


@admin_router.post("/tenants", status_code=201, responses=error_responses(409))
async def admin_create_tenant(_: Admin, uow: UoW, body: NewTenant) -> dict[str, str | None]:
    """Create a tenant. Every service learns of it through `tenant.created.v1`."""
    try:
        tenant_id = await handlers.create_tenant(
            uow,
            name=body.name,
            owner_email=body.owner_email,
            now=datetime.now(UTC),
            display_name=body.display_name,
        )
    except handlers.TenantExists:
        raise HTTPException(409, f"a tenant named {body.name!r} exists already") from None
    await uow.commit()
    return {
        "tenant_id": str(tenant_id),
        "name": body.name,
        "owner_email": body.owner_email,
        "display_name": body.display_name,
    }


@admin_router.patch("/tenants/{tenant}")
async def admin_update_tenant(_: Admin, uow: UoW, tenant: str, body: TenantChange) -> dict[str, Any]:
    """Change a tenant's display name or owner email (by name or id). Only the fields sent change;
    every service learns of it through `tenant.updated.v1`."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    try:
        updated = await handlers.update_tenant(uow, tenant=tenant, now=datetime.now(UTC), **changes)
    except handlers.UnknownTenant:
        raise HTTPException(404, f"no tenant {tenant!r}") from None
    await uow.commit()
    return updated


@admin_router.get("/tenants")
async def admin_list_tenants(_: Admin, uow: UoW) -> list[dict[str, Any]]:
    """Every tenant."""
    rows = await repository.list_tenants(uow.session)
    return [
        {
            "tenant_id": str(r.id),
            "name": r.name,
            "owner_email": r.owner_email,
            "display_name": r.display_name,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


@admin_router.post("/tenants/{tenant}/api-keys", status_code=201)
async def admin_create_api_key(_: Admin, uow: UoW, tenant: str) -> dict[str, str]:
    """Create an API key for a tenant (by name or id). The key is in this answer only; it is
    stored as a hash."""
    try:
        tenant_id, key = await handlers.create_api_key(uow, tenant=tenant, now=datetime.now(UTC))
    except handlers.UnknownTenant:
        raise HTTPException(404, f"no tenant {tenant!r}") from None
    await uow.commit()
    return {"tenant_id": str(tenant_id), "key_id": key.key_id, "api_key": key.secret}


@admin_router.delete("/api-keys/{key_id}", status_code=204)
async def admin_revoke_api_key(_: Admin, uow: UoW, key_id: str) -> Response:
    """Revoke a key. Services stop accepting it within 30 seconds."""
    if not await handlers.revoke_api_key(uow, key_id=key_id, now=datetime.now(UTC)):
        raise HTTPException(404, f"no active API key {key_id!r}")
    await uow.commit()
    return Response(status_code=204)
