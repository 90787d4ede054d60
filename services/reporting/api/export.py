"""The exports: every answer, and every follow-up case, of a period as CSV, streamed.

Rows are read in keyset batches, each in a short transaction of its own, and written out as they
come: memory stays flat and no connection waits on a slow download, however many millions of rows.
The keys (when an answer was first given, when a case was opened, and the ids) never change, so a
row that changes while the export runs still comes exactly once.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from libs.common.db import Database
from libs.common.deps import edge_of
from libs.common.events import nps_category
from libs.common.web import TenantOrPerson
from services.reporting.api.params import SinceQuery, TouchpointQuery, UntilQuery
from services.reporting.api.verbatims import period_of
from services.reporting.domain.spreadsheet import text_cell
from services.reporting.domain.verbatims import Position, categories_of, language_of
from services.reporting.models import FollowupCase, Response
from services.reporting.repository import Period, ReportingRepository

router = APIRouter(tags=["reports"])

#: Rows per query: big enough that the round trips do not matter, small enough to hold.
BATCH_ROWS = 2000
#: The first page is small, so the download starts at once (2,000 rows took the first byte to ~0.3 s).
FIRST_BATCH_ROWS = 100

RESPONSE_COLUMNS = (
    "response_id",
    "invitation_id",
    "customer_id",
    "touchpoint",
    "score",
    "nps_category",
    "comment",
    "recommended",
    "csat",
    "effort",
    "revision",
    "responded_at",
    "updated_at",
    "locale",
    "language",
    "country",
    "channel",
    "store",
    "category",
    "plan",
    "account_id",
    "attributes",
    "spend_12m",
)
CASE_COLUMNS = (
    "case_id",
    "response_id",
    "touchpoint",
    "status",
    "breached",
    "priority",
    "assignee_name",
    "team_name",
    "opened_at",
    "due_at",
    "updated_at",
    "contacted_at",
    "seconds_to_contact",
    "contact_within_sla",
    "resolved_at",
    "seconds_to_resolution",
    "root_cause",
    "recovery_score",
)
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV (RFC 4180, UTF-8), header row first"}
}


def _database(request: Request) -> Database[ReportingRepository]:
    """The service's database itself, not one unit of work: the stream opens one per batch, after
    the route has returned."""
    database: Database[ReportingRepository] = edge_of(request).database
    return database


ReportingDatabase = Annotated[Database[ReportingRepository], Depends(_database)]


def _value(value: object) -> str:
    """A cell the platform wrote (ids, numbers, times, flags): never a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _json_text(value: object) -> str:
    return "" if value is None else text_cell(json.dumps(value, ensure_ascii=False, sort_keys=True))


def response_row(answer: Response) -> list[str]:
    attributes = answer.attributes or {}
    return [
        *map(_value, (answer.response_id, answer.invitation_id)),
        text_cell(answer.customer_id),
        *map(_value, (answer.touchpoint, answer.score, nps_category(answer.score))),
        text_cell(answer.comment),
        *map(_value, (answer.recommended, answer.csat, answer.effort, answer.revision)),
        *map(_value, (answer.responded_at, answer.updated_at)),
        text_cell(answer.locale),
        text_cell(language_of(answer.locale)),
        *(text_cell(attributes.get(name)) for name in ("country", "channel", "store")),
        text_cell(",".join(categories_of(attributes))),
        text_cell(attributes.get("plan")),
        text_cell(answer.account_id),
        _json_text(answer.attributes),
        _json_text(answer.spend_12m),
    ]


def case_row(case: FollowupCase) -> list[str]:
    return [
        *map(_value, (case.case_id, case.response_id, case.touchpoint, case.status, case.breached)),
        _value(case.priority),
        text_cell(case.assignee_name),
        text_cell(case.team_name),
        *map(_value, (case.opened_at, case.due_at, case.updated_at, case.contacted_at)),
        *map(_value, (case.seconds_to_contact, case.contact_within_sla)),
        *map(_value, (case.resolved_at, case.seconds_to_resolution)),
        text_cell(case.root_cause),
        _value(case.recovery_score),
    ]


def csv_lines(rows: Iterable[Sequence[str]]) -> bytes:
    """Rows as RFC 4180 lines (CRLF, quoted where needed), UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


async def _responses_csv(database: Database[ReportingRepository], period: Period) -> AsyncIterator[bytes]:
    yield csv_lines([RESPONSE_COLUMNS])
    after: Position | None = None
    while True:
        # The rows are read inside the transaction: its end expires them.
        async with database.uow() as uow:
            size = FIRST_BATCH_ROWS if after is None else BATCH_ROWS
            batch = await uow.repository.responses_after(period, after, size)
            lines = csv_lines(response_row(answer) for answer in batch)
            last = Position(batch[-1].responded_at, batch[-1].response_id) if batch else None
        if lines:
            yield lines
        if len(batch) < size:
            return
        after = last


async def _cases_csv(database: Database[ReportingRepository], period: Period) -> AsyncIterator[bytes]:
    yield csv_lines([CASE_COLUMNS])
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        async with database.uow() as uow:
            size = FIRST_BATCH_ROWS if after is None else BATCH_ROWS
            batch = await uow.repository.cases_after(period, after, size)
            lines = csv_lines(case_row(case) for case in batch)
            # As ix_cases_tenant_opened orders them: by opening, else by update.
            last = (batch[-1].opened_at or batch[-1].updated_at, batch[-1].case_id) if batch else None
        if lines:
            yield lines
        if len(batch) < size:
            return
        after = last


def _attachment(stream: AsyncIterator[bytes], name: str, period: Period) -> StreamingResponse:
    filename = f"{name}_{period.since.date().isoformat()}_{period.until.date().isoformat()}.csv"
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/v1/reports/export/responses.csv", response_class=StreamingResponse, responses=_CSV_RESPONSE)
async def export_responses(
    tenant: TenantOrPerson,
    database: ReportingDatabase,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    """Every answer of the period (by when it was first given), oldest first, as it stands now,
    streamed as CSV (RFC 4180, UTF-8, header row): response_id, invitation_id, customer_id,
    touchpoint, score, nps_category, comment, recommended, csat, effort, revision, responded_at,
    updated_at, locale, language, country, channel, store, category, plan, account_id, attributes,
    spend_12m. language to plan are the answer's segments (categories joined by ','); attributes
    and spend_12m the survey context's snapshot as JSON. Text a tenant or customer wrote that a
    spreadsheet would take for a formula starts with an apostrophe."""
    period = period_of(tenant.tenant_id, since, until, touchpoint)
    return _attachment(_responses_csv(database, period), "responses", period)


@router.get("/v1/reports/export/cases.csv", response_class=StreamingResponse, responses=_CSV_RESPONSE)
async def export_cases(
    tenant: TenantOrPerson,
    database: ReportingDatabase,
    touchpoint: TouchpointQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    """Every follow-up case opened in the period (while its opening has not reached reporting, by
    its latest update), in that order, streamed as CSV (RFC 4180, UTF-8, header row): case_id,
    response_id, touchpoint, status, breached, priority, assignee_name, team_name, opened_at,
    due_at, updated_at, contacted_at, seconds_to_contact, contact_within_sla, resolved_at,
    seconds_to_resolution, root_cause, recovery_score. Times are ISO 8601, durations in seconds.
    Names and root causes that a spreadsheet would take for a formula start with an apostrophe."""
    period = period_of(tenant.tenant_id, since, until, touchpoint)
    return _attachment(_cases_csv(database, period), "cases", period)
