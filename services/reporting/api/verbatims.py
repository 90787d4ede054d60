"""The verbatims feed: what customers wrote, newest first, with their score and segments, and the
follow-up case an answer led to.

The query parameters follow the rules every report shares (spec 11): the checks of ``since``,
``until``, ``segment`` and ``cursor`` here belong in ``services/reporting/api/params.py`` once that
module is merged, and are to move there.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from libs.common.deps import Settings, UoW
from libs.common.events import NpsCategory, Timestamp, nps_category
from libs.common.web import TenantOrPerson
from services.reporting.domain.verbatims import (
    InvalidCursor,
    Position,
    decode_cursor,
    encode_cursor,
    scores_in,
    segments_of,
)
from services.reporting.models import Response
from services.reporting.repository import (
    CaseLink,
    Period,
    ReportingRepository,
    Segment,
    VerbatimFilter,
)

router = APIRouter(tags=["reports"])

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
DIMENSION = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_SEGMENT_VALUE = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DEFAULT_DAYS = 90
#: Three years, a leap day included.
MAX_DAYS = 1096
MAX_LIMIT = 500

TouchpointQuery = Annotated[
    str | None, Query(pattern=TOUCHPOINT_PATTERN, description="only this touchpoint, e.g. support-ticket")
]
SinceQuery = Annotated[
    Timestamp | None,
    Query(
        description="from then on (inclusive): an ISO date (UTC midnight) or date-time; by default "
        "90 days before until"
    ),
]
UntilQuery = Annotated[
    Timestamp | None,
    Query(
        description="up to then (exclusive): an ISO date (UTC midnight) or date-time; by default "
        "tomorrow (UTC). At most 1096 days after since"
    ),
]
SegmentQuery = Annotated[
    str | None,
    Query(
        max_length=241,
        description="dimension:value, e.g. country:DK, language:da, category:shoes, account:A-17 or "
        "a dimension the tenant declared; an unknown dimension simply matches no answers",
    ),
]


def invalid(parameter: str, message: str) -> RequestValidationError:
    """A 422 naming the query parameter, in the shape FastAPI's own checks give."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": None}]
    )


def period_of(
    tenant_id: uuid.UUID, since: datetime | None, until: datetime | None, touchpoint: str | None
) -> Period:
    """The period asked for, with the defaults: until tomorrow (UTC), since 90 days before until."""
    if until is None:
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        until = datetime.combine(tomorrow, time(), tzinfo=UTC)
    if since is None:
        if until - datetime.min.replace(tzinfo=UTC) < timedelta(days=DEFAULT_DAYS):
            raise invalid("until", f"at least {DEFAULT_DAYS} days after 0001-01-01 when since is not given")
        since = until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise invalid("since", "must be before until")
    if until - since > timedelta(days=MAX_DAYS):
        raise invalid("since", f"at most {MAX_DAYS} days before until")
    return Period(tenant_id=tenant_id, since=since, until=until, touchpoint=touchpoint)


def segment_of(text: str | None) -> Segment | None:
    """``dimension:value``: a dimension as attribute keys are named, a value of 1-200 characters."""
    if text is None:
        return None
    dimension, separator, value = text.partition(":")
    if not separator or not DIMENSION.match(dimension):
        raise invalid("segment", f"dimension:value, the dimension matching {DIMENSION.pattern}")
    if not 1 <= len(value) <= MAX_SEGMENT_VALUE or _CONTROL.search(value):
        raise invalid("segment", f"the value is 1 to {MAX_SEGMENT_VALUE} characters, no control characters")
    return Segment(dimension=dimension, value=value)


def position_of(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursor as error:
        raise invalid("cursor", str(error)) from error


class CaseView(BaseModel):
    case_id: uuid.UUID
    status: str = Field(description="open, contacted or resolved")
    url: str = Field(description="the case at the case desk")


class VerbatimView(BaseModel):
    response_id: uuid.UUID
    touchpoint: str
    score: int = Field(description="the current score: a revision within the grace period replaces it")
    category: NpsCategory = Field(description="promoter (9-10), passive (7-8) or detractor (0-6)")
    comment: str
    recommended: bool | None = Field(description="recommended us in the last 12 months")
    csat: int | None = Field(description="satisfaction, 1-5")
    effort: int | None = Field(description="effort, 1-7")
    responded_at: datetime
    segments: dict[str, str] = Field(
        description="the built-in segments of the answer's survey context (country, language, channel, "
        "store, category, plan, account), where it has them; several categories are joined by ','"
    )
    case: CaseView | None = Field(description="the follow-up case the answer led to, if any")


class VerbatimPage(BaseModel):
    verbatims: list[VerbatimView]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


def _view(answer: Response, case: CaseLink | None, desk_url: str) -> VerbatimView:
    return VerbatimView(
        response_id=answer.response_id,
        touchpoint=answer.touchpoint,
        score=answer.score,
        category=nps_category(answer.score),
        comment=answer.comment or "",
        recommended=answer.recommended,
        csat=answer.csat,
        effort=answer.effort,
        responded_at=answer.responded_at,
        segments=segments_of(answer.locale, answer.account_id, answer.attributes),
        case=None
        if case is None
        else CaseView(case_id=case.case_id, status=case.status, url=f"{desk_url}/desk/cases/{case.case_id}"),
    )


@router.get("/v1/reports/verbatims")
async def get_verbatims(
    tenant: TenantOrPerson,
    uow: UoW,
    settings: Settings,
    touchpoint: TouchpointQuery = None,
    segment: SegmentQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    category: Annotated[
        NpsCategory | None, Query(description="only this group, by the current score")
    ] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="comments containing this, any case")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="answers per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="the next_cursor of the previous page")
    ] = None,
) -> VerbatimPage:
    """What customers wrote: the answers with a comment, newest first (by when they first
    answered), each with its score, NPS group, the follow-up questions, its segments and the
    follow-up case it led to. Filters: touchpoint, segment (``dimension:value``), the period
    (since inclusive, until exclusive), the NPS group by the current score, and q, a
    case-insensitive substring of the comment. Pages follow ``next_cursor``."""
    where = VerbatimFilter(
        period=period_of(tenant.tenant_id, since, until, touchpoint),
        segment=segment_of(segment),
        scores=None if category is None else scores_in(category),
        q=q,
        after=position_of(cursor),
    )
    repository: ReportingRepository = uow.repository
    await repository.read_one_snapshot()
    answers = await repository.verbatims(where, limit + 1)
    page = answers[:limit]
    cases = await repository.cases_of_answers(tenant.tenant_id, [answer.response_id for answer in page])
    last = page[-1] if len(answers) > limit else None
    return VerbatimPage(
        verbatims=[_view(answer, cases.get(answer.response_id), settings.desk_public_url) for answer in page],
        next_cursor=None if last is None else encode_cursor(Position(last.responded_at, last.response_id)),
    )
