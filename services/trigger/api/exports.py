"""``GET /v1/decisions.csv``: every decision of a date range as CSV, streamed in keyset pages so that
a range of millions of decisions takes the memory of one page."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from libs.common.deps import Tenant, UoW
from libs.common.http import error_body, error_responses
from services.trigger.repository import ExportedDecision, TriggerRepository

router = APIRouter()

#: Rows read per query: a page's worth of memory, and one short transaction each.
PAGE_ROWS = 1000
#: The longest range one export covers (three years), as the report's exports.
MAX_RANGE = timedelta(days=1096)
#: Without ``since``, an export covers this much before ``until``.
DEFAULT_RANGE = timedelta(days=90)

COLUMNS = ExportedDecision._fields[1:]
_TEXT_COLUMNS = frozenset(
    {"event_id", "event_type", "customer_id", "touchpoint", "outcome", "reason", "detail"}
)

_RANGE_DOC = "ISO 8601 date or date-time (UTC when it names no offset)"


@router.get(
    "/v1/decisions.csv",
    tags=["intake"],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "one row per decision, oldest first, header first",
        },
        **error_responses(422),
    },
)
async def get_decisions_csv(
    tenant: Tenant,
    uow: UoW,
    since: Annotated[str | None, Query(max_length=40, description=f"inclusive; {_RANGE_DOC}")] = None,
    until: Annotated[str | None, Query(max_length=40, description=f"exclusive; {_RANGE_DOC}")] = None,
) -> StreamingResponse:
    """Every decision of the tenant with `since <= decided_at < until`, oldest first, as CSV (RFC
    4180, UTF-8, `\\r\\n`, a header row): decided_at, event_id, event_type, customer_id, touchpoint,
    touchpoint_version, outcome, reason, detail, invitation_id, rest_period_days, rest_until,
    send_at. Times are ISO 8601 in UTC. `until` defaults to tomorrow (UTC), `since` to 90 days
    before `until`; the range is at most three years (1096 days). A text cell starting with `=`,
    `+`, `-`, `@`, a tab or a carriage return gets a leading apostrophe, so that a spreadsheet does
    not run it as a formula. Streamed: the download starts at once, whatever the range holds;
    decisions recorded while it runs may or may not be in it."""
    start, end = export_range(since, until, now=datetime.now(UTC))
    filename = f"decisions-{start.date().isoformat()}-{end.date().isoformat()}.csv"
    return StreamingResponse(
        _csv_pages(uow.repository, tenant.tenant_id, start, end),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def export_range(since: str | None, until: str | None, *, now: datetime) -> tuple[datetime, datetime]:
    """The range ``[since, until)`` in UTC, with its defaults; 422 naming the parameter at fault."""
    end = _moment("until", until) if until else datetime.combine(now.date() + timedelta(days=1), time(), UTC)
    try:
        start = _moment("since", since) if since else end - DEFAULT_RANGE
    except OverflowError:
        raise _invalid("until", "is too early to count 90 days back from: give since too") from None
    if start >= end:
        raise _invalid("since", "must be before until")
    if end - start > MAX_RANGE:
        raise _invalid("since", f"the range may cover at most {MAX_RANGE.days} days")
    return start, end


def _moment(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid(name, "must be an ISO 8601 date or date-time, e.g. 2026-01-31") from None


def _invalid(name: str, message: str) -> HTTPException:
    return HTTPException(
        422, error_body("invalid_request", "", [{"field": f"query.{name}", "message": message}])
    )


async def _csv_pages(
    repository: TriggerRepository, tenant_id: uuid.UUID, since: datetime, until: datetime
) -> AsyncIterator[str]:
    """The header, then one chunk per keyset page. Each page is read in a transaction of its own,
    ended before the chunk is sent: a slow download holds no transaction and no connection."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield out.getvalue()
    after: tuple[datetime, int] | None = None
    try:
        while True:
            page = await repository.decisions_between(tenant_id, since, until, after=after, limit=PAGE_ROWS)
            await repository.session.rollback()
            if not page:
                return
            out.seek(0)
            out.truncate()
            writer.writerows(_row(decision) for decision in page)
            yield out.getvalue()
            if len(page) < PAGE_ROWS:
                return
            after = (page[-1].decided_at, page[-1].id)
    finally:
        # A client that goes away mid-page leaves that page's transaction open: end it here.
        await repository.session.rollback()


def _row(decision: ExportedDecision) -> list[str | int]:
    cells: list[str | int] = []
    for name in COLUMNS:
        value = getattr(decision, name)
        if value is None:
            cells.append("")
        elif isinstance(value, datetime):
            cells.append(value.astimezone(UTC).isoformat())
        elif name in _TEXT_COLUMNS:
            cells.append(_text(str(value)))
        else:
            cells.append(value if isinstance(value, int) else str(value))
    return cells


def _text(value: str) -> str:
    """A cell as a spreadsheet reads it: a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return
    would make it a formula, so it is quoted with an apostrophe (OWASP's advice against CSV
    injection), as the report's CSV does."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
