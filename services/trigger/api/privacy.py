"""A tenant's privacy routes: its retention (``GET``/``PUT /v1/privacy/retention``), and
``GET /v1/customers/{customer_id}/export``, a customer's right of access. Everything the platform
holds about one customer of the calling tenant, as one JSON document: the trigger's own part and
each other service's ``GET /v1/customers/{customer_id}/data``, asked over HTTP with the caller's own
credentials, so every service applies its own tenant check. Every section is followed page by page
and streamed out as it comes, so the document is whole and memory is a page."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from libs.common.db import Database
from libs.common.deps import Tenant, UoW, edge_of
from libs.common.events import TenantRetentionSet
from libs.common.http import error_body, error_responses
from libs.common.privacy import CUSTOMER_ID_DOC, SECTION_LIMIT, Json, Section
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


#: Ids one call to scoring or to reporting's funnel names (their bound): a page of the survey's
#: answers or invitations is asked for in chunks of this many.
ID_CHUNK = 100
#: The other services, in the order the document gives them (and a failure before it is named in).
SERVICES = ("survey", "scoring", "alerting", "reporting")
#: Sections read from another service's section, a chunk of ids at a time, not by customer:
#: (service, section) -> (the survey's section, its id field, the query parameter naming them).
BY_SURVEY_IDS = {
    ("scoring", "scored_answers"): ("answers", "response_id", "response_id"),
    ("reporting", "funnel"): ("invitations", "id", "invitation_id"),
}

log = logging.getLogger("services.trigger.export")


class ServiceUnavailable(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class ExportAborted(Exception):
    """Raised from the stream once it has begun: the connection is closed without the end of the
    body, so the client holds an unfinished (unparseable) document, never a partial one that looks
    whole."""


def _database(request: Request) -> Database[TriggerRepository]:
    """The service's database itself, not one unit of work: the stream opens one per page, after
    the route has returned."""
    database: Database[TriggerRepository] = edge_of(request).database
    return database


TriggerDatabase = Annotated[Database[TriggerRepository], Depends(_database)]

_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}},
        "description": 'the whole document, streamed; it ends with `"complete": true`',
    },
    **error_responses(404, 503),
}


@router.get(
    "/v1/customers/{customer_id}/export", response_class=StreamingResponse, responses=_EXPORT_RESPONSES
)
async def export_customer(
    request: Request,
    tenant: Tenant,
    database: TriggerDatabase,
    settings: TriggerConfig,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
) -> StreamingResponse:
    """Everything held about one customer of the calling tenant, as one JSON document, whatever
    they hold: `customer_id`, `generated_at`, one part per service, and `complete: true` last.
    `trigger` (the customer record, per-touchpoint clocks, decisions, source records, purchases),
    `survey` (invitations, answers, comments, follow-up answers, and `suppression` as
    `unsubscribed: true|false`, the list keeping only hashes of addresses), `scoring` (the scored
    answers), `alerting` (cases, notes, contacts, the rest of the timelines, the emails about the
    cases, its copy of the answers, webhook deliveries), `reporting` (its read model's answers,
    purchases and cases, and the funnel's facts of the customer's invitations). Every section holds
    all its rows (`truncated` is always false): the trigger follows each service's pages and
    streams the document out as it goes, so its memory is a page, not the customer's history.
    Never another customer's rows, never survey tokens.

    404 `customer_not_found` when no service holds anything about this id for the calling tenant:
    an unknown customer, or another tenant's, look alike. 503 `service_unavailable` naming the
    service (`problems[].field`) when one of them cannot answer before the document begins. One
    that fails once it has begun ends the response without the rest of the body: the client's
    read fails and what it holds is not valid JSON. An export is complete or not given."""
    credentials = {
        name: value
        for name, value in (
            ("Authorization", request.headers.get("authorization")),
            ("X-API-Key", request.headers.get("x-api-key")),
        )
        if value is not None
    }
    try:
        async with _client(settings, credentials) as client:
            catalogue = await _first_look(client, settings, customer_id)
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
    # Read after the calls: no connection is held while other services answer.
    async with database.uow() as uow:
        own = await uow.repository.customer_data(tenant.tenant_id, customer_id, limit=1)
    held = {"trigger": own, **{name: looked.sections for name, looked in catalogue.items()}}
    if not any(_holds_something(sections) for sections in held.values()):
        raise HTTPException(
            404, error_body("customer_not_found", "no data is held about this customer for this tenant")
        )
    document = _document(database, tenant.tenant_id, customer_id, list(own), catalogue, settings, credentials)
    return StreamingResponse(
        document,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@dataclass(frozen=True)
class FirstLook:
    """A service's first row of each section: it answers, which sections it has, whether it holds
    anything about the customer."""

    base_url: str
    sections: dict[str, Section]


def _client(settings: TriggerSettings, credentials: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=settings.export_timeout_seconds, headers=credentials, trust_env=False)


def _urls(settings: TriggerSettings) -> dict[str, str]:
    return {
        "survey": settings.survey_api_url,
        "scoring": settings.scoring_api_url,
        "alerting": settings.alerting_api_url,
        "reporting": settings.reporting_api_url,
    }


async def _first_look(
    client: httpx.AsyncClient, settings: TriggerSettings, customer_id: str
) -> dict[str, FirstLook]:
    """Every other service's sections, one row each, asked together; the first of them (in
    :data:`SERVICES` order) that cannot answer is :class:`ServiceUnavailable`."""
    urls = _urls(settings)
    answers = await asyncio.gather(
        *(_part(client, name, urls[name], customer_id, {"limit": 1}) for name in SERVICES),
        return_exceptions=True,
    )
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return {
        name: FirstLook(urls[name], answer)
        for name, answer in zip(SERVICES, answers, strict=True)
        if not isinstance(answer, BaseException)
    }


def _holds_something(sections: dict[str, Section]) -> bool:
    for name, section in sections.items():
        if name == "suppression":
            if any(item.get("unsubscribed") for item in section.items):
                return True
        elif section.items:
            return True
    return False


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


async def _document(
    database: Database[TriggerRepository],
    tenant_id: uuid.UUID,
    customer_id: str,
    own_sections: list[str],
    catalogue: dict[str, FirstLook],
    settings: TriggerSettings,
    credentials: dict[str, str],
) -> AsyncIterator[bytes]:
    """The document, a page at a time: each section's items are written as its pages come, and
    the closing ``"complete": true`` only after the last. A service failing meanwhile aborts it."""
    yield b'{"customer_id": ' + _json(customer_id)
    yield b', "generated_at": ' + _json(datetime.now(UTC).isoformat()) + b', "section_limit": '
    yield _json(SECTION_LIMIT) + b', "trigger": {'
    for index, name in enumerate(own_sections):
        async for chunk in _section(name, index, _own_pages(database, tenant_id, customer_id, name)):
            yield chunk
    yield b"}"
    try:
        async with _client(settings, credentials) as client:
            for service in SERVICES:
                yield b", " + _json(service) + b": {"
                looked = catalogue[service]
                for index, name in enumerate(looked.sections):
                    pages = _service_pages(client, catalogue, customer_id, service, name)
                    async for chunk in _section(name, index, pages):
                        yield chunk
                yield b"}"
    except ServiceUnavailable as down:
        log.warning(
            "export.aborted",
            extra={"tenant_id": str(tenant_id), "service": down.service, "reason": down.reason},
        )
        raise ExportAborted(str(down)) from None
    yield b', "complete": true}'


async def _section(name: str, index: int, pages: AsyncIterator[list[Json]]) -> AsyncIterator[bytes]:
    yield (b", " if index else b"") + _json(name) + b': {"items": ['
    first = True
    async for items in pages:
        if items:
            yield (b"" if first else b", ") + b", ".join(_json(item) for item in items)
            first = False
    yield b'], "truncated": false}'


async def _own_pages(
    database: Database[TriggerRepository], tenant_id: uuid.UUID, customer_id: str, name: str
) -> AsyncIterator[list[Json]]:
    after: str | None = None
    while True:
        # One short transaction a page: no connection waits on a slow download.
        async with database.uow() as uow:
            pages = await uow.repository.customer_data(tenant_id, customer_id, section=name, after=after)
        page = pages[name]
        yield list(page.items)
        if page.next is None:
            return
        after = page.next


async def _service_pages(
    client: httpx.AsyncClient, catalogue: dict[str, FirstLook], customer_id: str, service: str, name: str
) -> AsyncIterator[list[Json]]:
    """The pages of one section of a service: down its cursor, or, for a section kept by the
    survey's ids (:data:`BY_SURVEY_IDS`), one call per chunk of the ids of each survey page."""
    url = catalogue[service].base_url
    by_ids = BY_SURVEY_IDS.get((service, name))
    if by_ids is None:
        async for page in _cursor_pages(client, service, url, customer_id, name):
            yield list(page)
        return
    survey_section, id_field, parameter = by_ids
    survey_url = catalogue["survey"].base_url
    async for survey_page in _cursor_pages(client, "survey", survey_url, customer_id, survey_section):
        ids = [str(item[id_field]) for item in survey_page if isinstance(item, dict) and id_field in item]
        for start in range(0, len(ids), ID_CHUNK):
            params = {"section": name, parameter: ids[start : start + ID_CHUNK]}
            sections = await _part(client, service, url, customer_id, params)
            yield list(_only(sections, service, name).items)


async def _cursor_pages(
    client: httpx.AsyncClient, service: str, url: str, customer_id: str, name: str
) -> AsyncIterator[list[Json]]:
    after: str | None = None
    while True:
        params: dict[str, Any] = {"section": name, "limit": SECTION_LIMIT}
        if after is not None:
            params["after"] = after
        page = _only(await _part(client, service, url, customer_id, params), service, name)
        yield list(page.items)
        if page.next is None:
            return
        if page.next == after:
            raise ServiceUnavailable(service, f"gave the same page of {name} twice")
        after = page.next


def _only(sections: dict[str, Section], service: str, name: str) -> Section:
    if name not in sections:
        raise ServiceUnavailable(service, f"did not give its {name}")
    return sections[name]


async def _part(
    client: httpx.AsyncClient, service: str, base_url: str, customer_id: str, params: dict[str, Any]
) -> dict[str, Section]:
    """One service's answer to ``/data`` (sections of pages), or :class:`ServiceUnavailable`
    naming it."""
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
        if body.get("customer_id") != customer_id or not isinstance(sections, dict):
            raise ServiceUnavailable(service, "answered for another customer")
        return {
            str(name): Section(
                [item for item in section["items"] if isinstance(item, dict)],
                None if section.get("next") is None else str(section["next"]),
            )
            for name, section in sections.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ServiceUnavailable(service, "answered something that is not its part") from None
