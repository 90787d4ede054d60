"""A tenant's privacy routes: its retention (``GET``/``PUT /v1/privacy/retention``), and
``GET /v1/customers/{customer_id}/export``, a customer's right of access. Everything the platform
holds about one customer of the calling tenant, as one JSON document: the trigger's own part and
each other service's ``GET /v1/customers/{customer_id}/data``, asked over HTTP with the caller's own
credentials, so every service applies its own tenant check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from libs.common.deps import Tenant, UoW
from libs.common.events import TenantRetentionSet
from libs.common.http import error_body, error_responses
from libs.common.privacy import CUSTOMER_ID_DOC, SECTION_LIMIT, Json, sections_json
from services.trigger.api.dependencies import TriggerConfig
from services.trigger.config import TriggerSettings
from services.trigger.repository import TriggerRepository

router = APIRouter(tags=["privacy"])

_MONTHS_DOC = "whole months, 1 to 120; null keeps them"


class RetentionBody(BaseModel):
    """How long the platform keeps a tenant's customers' data, in every service."""

    model_config = ConfigDict(extra="forbid")
    comments_months: int | None = Field(
        ge=1, le=120, description=f"after how many months customers' comments are removed; {_MONTHS_DOC}"
    )
    invitations_months: int | None = Field(
        ge=1,
        le=120,
        description="after how many months an invitation (once its link has expired) forgets whom it "
        f"went to: address, name, context; {_MONTHS_DOC}",
    )


@router.get("/v1/privacy/retention")
async def get_retention(tenant: Tenant, uow: UoW) -> RetentionBody:
    """The tenant's retention: how many months customers' comments and invitations are kept (null:
    kept). A new tenant keeps everything."""
    repository: TriggerRepository = uow.repository
    comments, invitations = await repository.tenant_retention(tenant.tenant_id)
    return RetentionBody(comments_months=comments, invitations_months=invitations)


@router.put("/v1/privacy/retention", responses=error_responses(422))
async def put_retention(tenant: Tenant, uow: UoW, body: RetentionBody) -> RetentionBody:
    """Set the tenant's retention (both fields, the whole state). Every service hears of it
    (`tenant.retention_set.v1` on `nps.tenants`) and its retention job removes comments older than
    `comments_months` (scores and counts stay) and anonymises invitations older than
    `invitations_months` whose link has expired, in batches, from then on."""
    repository: TriggerRepository = uow.repository
    await repository.set_tenant_retention(tenant.tenant_id, body.comments_months, body.invitations_months)
    now = datetime.now(UTC)
    data = TenantRetentionSet(
        tenant_id=tenant.tenant_id,
        comments_months=body.comments_months,
        invitations_months=body.invitations_months,
        updated_at=now,
    )
    uow.emit(data, tenant_id=tenant.tenant_id, subject=str(tenant.tenant_id))
    await uow.commit()
    return body


#: Response ids one call to scoring names (its own bound); the survey's part gives at most
#: SECTION_LIMIT of them.
SCORING_CHUNK = 100


class ServiceUnavailable(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


@router.get(
    "/v1/customers/{customer_id}/export",
    responses=error_responses(404, 503),
)
async def export_customer(
    request: Request,
    tenant: Tenant,
    uow: UoW,
    settings: TriggerConfig,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
) -> dict[str, Any]:
    """Everything held about one customer of the calling tenant, as JSON: `customer_id`,
    `generated_at`, and one section per service: `trigger` (the customer record, decisions,
    purchases), `survey` (invitations, answers, comments, follow-up answers, and `suppression` as
    `unsubscribed: true|false`, the list keeping only hashes of addresses), `scoring` (the scored
    answers), `alerting` (cases, notes, contacts, its copy of the answers), `reporting` (its read
    model's answers, purchases and cases). Each part's every kind holds the newest `section_limit`
    rows, `truncated` true when there are more. Never another customer's rows, never survey tokens.

    404 `customer_not_found` when no service holds anything about this id for the calling tenant:
    an unknown customer, or another tenant's, look alike. 503 `service_unavailable` naming the
    service (`problems[].field`) when one of them cannot answer: an export is complete or not given."""
    credentials = {
        name: value
        for name, value in (
            ("Authorization", request.headers.get("authorization")),
            ("X-API-Key", request.headers.get("x-api-key")),
        )
        if value is not None
    }
    try:
        parts = await _other_parts(settings, customer_id, credentials)
    except ServiceUnavailable as down:
        raise HTTPException(
            503,
            error_body(
                "service_unavailable",
                f"the {down.service} service did not give its part of the export ({down.reason}); "
                "try again later",
                [{"field": down.service, "message": down.reason}],
            ),
        ) from None
    # Read after the calls: the request's connection is not held while other services answer.
    repository: TriggerRepository = uow.repository
    own = await repository.customer_data(tenant.tenant_id, customer_id)
    document: dict[str, Any] = {
        "customer_id": customer_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "section_limit": SECTION_LIMIT,
        "trigger": sections_json(own),
        **parts,
    }
    if not any(_holds_something(document[name]) for name in ("trigger", *parts)):
        raise HTTPException(
            404, error_body("customer_not_found", "no data is held about this customer for this tenant")
        )
    return document


def _holds_something(part: Json) -> bool:
    assert isinstance(part, dict)
    for name, section in part.items():
        assert isinstance(section, dict)
        items = section["items"]
        assert isinstance(items, list)
        if name == "suppression":
            if any(isinstance(item, dict) and item.get("unsubscribed") for item in items):
                return True
        elif items:
            return True
    return False


async def _other_parts(
    settings: TriggerSettings, customer_id: str, credentials: dict[str, str]
) -> dict[str, Json]:
    async with httpx.AsyncClient(
        timeout=settings.export_timeout_seconds, headers=credentials, trust_env=False
    ) as client:
        # The survey first: scoring keeps answers by response, and the survey names the responses.
        survey = await _part(client, "survey", settings.survey_api_url, customer_id)
        response_ids = [str(item["response_id"]) for item in _items(survey, "answers")]
        chunks = [response_ids[i : i + SCORING_CHUNK] for i in range(0, len(response_ids), SCORING_CHUNK)]
        scoring_parts, alerting, reporting = await asyncio.gather(
            asyncio.gather(
                *(
                    _part(client, "scoring", settings.scoring_api_url, customer_id, {"response_id": chunk})
                    for chunk in chunks
                )
            ),
            _part(client, "alerting", settings.alerting_api_url, customer_id),
            _part(client, "reporting", settings.reporting_api_url, customer_id),
        )
        scored: list[Json] = [item for part in scoring_parts for item in _items(part, "scored_answers")]
        return {
            "survey": survey,
            "scoring": {"scored_answers": {"items": scored, "truncated": _truncated(survey, "answers")}},
            "alerting": alerting,
            "reporting": reporting,
        }


def _items(part: Json, section: str) -> list[dict[str, Any]]:
    assert isinstance(part, dict)
    found = part.get(section)
    items = found.get("items") if isinstance(found, dict) else None
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def _truncated(part: Json, section: str) -> bool:
    assert isinstance(part, dict)
    found = part.get(section)
    return bool(isinstance(found, dict) and found.get("truncated"))


async def _part(
    client: httpx.AsyncClient,
    service: str,
    base_url: str,
    customer_id: str,
    params: dict[str, list[str]] | None = None,
) -> Json:
    """One service's sections, or :class:`ServiceUnavailable` naming it."""
    url = f"{base_url}/v1/customers/{quote(customer_id, safe='')}/data"
    try:
        response = await client.get(url, params=params)
    except httpx.TimeoutException:
        raise ServiceUnavailable(service, "timed out") from None
    except httpx.TransportError:
        raise ServiceUnavailable(service, "unreachable") from None
    if response.status_code != 200:
        raise ServiceUnavailable(service, f"answered {response.status_code}")
    try:
        body = response.json()
        sections = body["sections"]
    except (ValueError, KeyError, TypeError):
        raise ServiceUnavailable(service, "answered something that is not its part") from None
    if body.get("customer_id") != customer_id or not isinstance(sections, dict):
        raise ServiceUnavailable(service, "answered for another customer")
    result: Json = sections
    return result
