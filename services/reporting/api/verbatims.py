"""The verbatims feed: what customers wrote, newest first, with their score and segments, and the
follow-up case an answer led to.

The query parameters are checked as every report's are (``services/reporting/api/params.py``);
the feed keeps ``since`` and ``until`` to the microsecond, as it reads the answers themselves.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from libs.common.deps import Settings, UoW
from libs.common.events import NpsCategory, nps_category
from libs.common.web import TenantOrPerson
from services.reporting.api.params import (
    SegmentQuery,
    SinceQuery,
    TouchpointQuery,
    UntilQuery,
    invalid,
    moment_range,
    segment_of,
)
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
    VerbatimFilter,
)

router = APIRouter(tags=["reports"])

MAX_LIMIT = 500


def period_of(
    tenant_id: uuid.UUID, since: datetime | None, until: datetime | None, touchpoint: str | None
) -> Period:
    """The period asked for, with the defaults: until tomorrow (UTC), since 90 days before until."""
    moments = moment_range(since, until, datetime.now(UTC).date())
    return Period(tenant_id=tenant_id, since=moments.since, until=moments.until, touchpoint=touchpoint)


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
