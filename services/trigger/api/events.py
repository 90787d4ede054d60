"""HTTP routes of event intake: events, decisions, and the dry run of a decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from libs.common.deps import Tenant, UoW
from libs.common.events import Contract, Event, InvalidEvent, validate
from libs.common.http import error_body
from services.trigger import handlers
from services.trigger.api.dependencies import TriggerConfig
from services.trigger.config import TriggerSettings
from services.trigger.repository import TriggerRepository

router = APIRouter()

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
async def post_events(tenant: Tenant, uow: UoW, settings: TriggerConfig, request: Request) -> JSONResponse:
    """Take one CloudEvent, or a JSON array of up to 1,000: `purchase.completed.v1`,
    `ticket.closed.v1` (decided: invite or not), `order.cancelled.v1` (withdraws a pending
    invitation), `customer.upserted.v1`, `customer.unsubscribed.v1`, `customer.resubscribed.v1`,
    `customer.erased.v1` (erases the customer everywhere: its result carries the `erasure_id` of the
    receipt, `GET /v1/erasures/{erasure_id}`).

    `tenantid` may be left out: the API key says which tenant the events belong to. Each event gets
    a result in the order sent: `accepted` with the decision (`invited`, or `skipped` and a reason),
    `duplicate` when its id was seen before, or `rejected` with the problem. Answers 202 when at
    least one event was accepted or was a duplicate, 422 when every event was rejected.
    """
    single, raw_events = await _read_batch(request, settings)
    results, valid = _validate_each(raw_events, tenant.id)
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


async def _read_batch(request: Request, settings: TriggerSettings) -> tuple[bool, list[Any]]:
    """The body's events, and whether it was one event rather than an array of them."""
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
    return single, raw_events


def _validate_each(
    raw_events: list[Any], tenant_id: str
) -> tuple[list[dict[str, Any] | None], list[tuple[int, Event[Contract]]]]:
    """Each event validated on its own: the results of the rejected ones, in place, and the valid
    ones with their index in the batch."""
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
        if claimed is not None and claimed != tenant_id:
            results[index] = _rejected(raw, "tenantid: does not match the tenant of the API key")
            continue
        try:
            valid.append(
                (index, validate({**raw, "tenantid": tenant_id}, allowed_types=handlers.ACCEPTED_TYPES))
            )
        except InvalidEvent as error:
            results[index] = _rejected(raw, error.reason)
    return results, valid


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
    `cancelled`, `quota`) and a `detail`, `invited` with the reason `recovery` for the recovery
    survey of a follow-up case, `cancelled` or `recorded` for consent and cancellation events, each
    with the touchpoint version it used."""
    repository: TriggerRepository = uow.repository
    rows = await repository.decisions_for_customer(tenant.tenant_id, customer, limit)
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
async def dry_run_decision(tenant: Tenant, uow: UoW, settings: TriggerConfig, request: Request) -> DryRunView:
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
