"""HTTP routes of scoring: a tenant's Net Promoter Score, overall and per touchpoint, for everybody
or one segment, over all time or the last days; and the attribute keys a tenant segments by."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, field_validator

from libs.common.deps import Tenant, UoW
from libs.common.privacy import (
    CUSTOMER_ID_DOC,
    DATA_ROUTE_DOC,
    CustomerPart,
    PageRequestError,
    Section,
    SectionParam,
    data_answer,
)
from services.scoring.domain.cells import ROLLING_DAYS, rolling_window
from services.scoring.domain.nps import Tally
from services.scoring.domain.segments import BUILT_IN, MAX_DECLARED, MAX_VALUES, OTHER, declared_problem
from services.scoring.repository import CellQuery, ScoringRepository, TouchpointCounts

router = APIRouter(tags=["scores"])

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: ``dimension:value``: the dimension named as attribute keys are, the value 1-200 characters
#: without control characters (values are compared as sent: case-sensitive, trimmed).
SEGMENT_PATTERN = r"^[a-z][a-z0-9_]{0,39}:[^\x00-\x1f\x7f]{1,200}$"
Window = Literal["all", "7d", "30d", "90d"]


class ConfidenceIntervalView(BaseModel):
    low: float
    high: float
    level: float


class NpsView(BaseModel):
    nps: float | None = Field(description="-100 to 100, rounded to 2 decimals; null without answers")
    responses: int
    promoters: int
    passives: int
    detractors: int
    confidence_interval: ConfidenceIntervalView | None = Field(
        description="where the true score lies with 95 % confidence; null without answers"
    )


class _OfTouchpoint(BaseModel):
    touchpoint: str


# Listed after NpsView so that pydantic, which takes fields base-first, puts the touchpoint first.
class TouchpointNpsView(NpsView, _OfTouchpoint):
    pass


class NpsReport(NpsView):
    by_touchpoint: list[TouchpointNpsView]


def _fields(tally: Tally) -> dict[str, object]:
    nps = tally.nps
    interval = tally.confidence_interval()
    return {
        "nps": None if nps is None else round(nps, 2),
        "responses": tally.responses,
        "promoters": tally.promoters,
        "passives": tally.passives,
        "detractors": tally.detractors,
        "confidence_interval": None
        if interval is None
        else ConfidenceIntervalView(
            low=round(interval.low, 2), high=round(interval.high, 2), level=interval.level
        ),
    }


async def _tallies(
    repository: ScoringRepository, tenant: Tenant, touchpoint: str | None, segment: str | None, window: Window
) -> list[TouchpointCounts]:
    if segment is None and window == "all":
        # The running tallies: they also hold answers counted before cells were kept.
        return await repository.tallies_of_tenant(tenant.tenant_id, touchpoint)
    dimension, value = segment.split(":", 1) if segment is not None else ("", "")
    if window == "all":
        where = CellQuery(dimension, value, "month")
    else:
        since, until = rolling_window(datetime.now(UTC).date(), ROLLING_DAYS[window])
        where = CellQuery(dimension, value, "day", since, until)
    return await repository.cell_tallies(tenant.tenant_id, where, touchpoint)


@router.get("/v1/nps")
async def get_nps(
    tenant: Tenant,
    uow: UoW,
    touchpoint: Annotated[
        str | None, Query(pattern=TOUCHPOINT_PATTERN, description="only this touchpoint, e.g. support-ticket")
    ] = None,
    segment: Annotated[
        str | None,
        Query(
            pattern=SEGMENT_PATTERN,
            description="only the answers of one segment, `dimension:value`, e.g. `country:DK`; "
            "an unknown segment has no answers",
        ),
    ] = None,
    window: Annotated[
        Window,
        Query(description="`all` answers so far, or the last 7, 30 or 90 UTC days including today"),
    ] = "all",
) -> NpsReport:
    """The tenant's Net Promoter Score from every answer counted so far, with its 95 % confidence
    interval, overall and per touchpoint.

    Promoters answered 9-10, passives 7-8, detractors 0-6; NPS is the promoters' share minus the
    detractors' share, in points. Answers are counted a moment after they are given.

    With `segment`, only the answers of customers in that segment when they were asked (built in:
    country, language, channel, store, category, plan, account; and the keys declared with
    `PUT /v1/nps/segments`). A dimension holds at most 200 values; answers with any other value
    count under `(other)`. With `window`, only the answers given on the last N days, in UTC, by the
    date of the first answer (a changed score keeps it).
    """
    repository: ScoringRepository = uow.repository
    rows = await _tallies(repository, tenant, touchpoint, segment, window)
    overall = sum((row.tally for row in rows), Tally())
    return NpsReport(
        **_fields(overall),
        by_touchpoint=[TouchpointNpsView(touchpoint=row.touchpoint, **_fields(row.tally)) for row in rows],
    )


class SegmentDimensions(BaseModel):
    """The attribute keys a tenant segments its score by, on top of the built-in dimensions."""

    dimensions: list[str] = Field(
        max_length=MAX_DECLARED,
        description=f"at most {MAX_DECLARED} attribute keys, each `^[a-z][a-z0-9_]{{0,39}}$`, not built in",
    )

    @field_validator("dimensions")
    @classmethod
    def _valid(cls, dimensions: list[str]) -> list[str]:
        problem = declared_problem(dimensions)
        if problem is not None:
            raise ValueError(problem)
        return dimensions


class SegmentsView(SegmentDimensions):
    built_in: list[str] = Field(description="the dimensions every answer is segmented by")
    max_values: int = Field(description=f"values kept per dimension; the rest count under `{OTHER}`")


async def _segments_view(repository: ScoringRepository, tenant: Tenant) -> SegmentsView:
    declared = await repository.declared_dimensions([tenant.tenant_id])
    return SegmentsView(
        dimensions=declared.get(tenant.tenant_id, []), built_in=list(BUILT_IN), max_values=MAX_VALUES
    )


@router.get("/v1/nps/segments")
async def get_segments(tenant: Tenant, uow: UoW) -> SegmentsView:
    """The dimensions the tenant's answers are segmented by: the built-in ones and the attribute
    keys the tenant declared."""
    return await _segments_view(uow.repository, tenant)


@router.put("/v1/nps/segments")
async def put_segments(body: SegmentDimensions, tenant: Tenant, uow: UoW) -> SegmentsView:
    """Declare the attribute keys (at most 5) the tenant's answers are segmented by, besides the
    built-in ones; replaces the earlier list.

    An answer's segments are taken when it is counted, from the survey context's attributes:
    answers counted before a key was declared are not in its segments, and a key no longer
    declared keeps the cells it has.
    """
    repository: ScoringRepository = uow.repository
    await repository.declare_dimensions(tenant.tenant_id, body.dimensions)
    await uow.commit()
    return SegmentsView(dimensions=body.dimensions, built_in=list(BUILT_IN), max_values=MAX_VALUES)


#: Response ids one call may name: the export asks in chunks of this many.
MAX_RESPONSE_IDS = 100


@router.get("/v1/customers/{customer_id}/data", tags=["privacy"], description=DATA_ROUTE_DOC)
async def get_customer_data(
    tenant: Tenant,
    uow: UoW,
    customer_id: Annotated[str, Path(min_length=1, max_length=200, description=CUSTOMER_ID_DOC)],
    response_id: Annotated[
        list[uuid.UUID],
        Query(
            max_length=MAX_RESPONSE_IDS,
            description="the customer's responses (scoring keeps answers by response, not by customer; "
            f"the export takes them from the survey's part), at most {MAX_RESPONSE_IDS} a call",
        ),
    ] = [],  # noqa: B006 - FastAPI copies a query default
    section: SectionParam = None,
) -> CustomerPart:
    """Scoring's section: the scored answers (score, category's revision, day, segments, spend) of
    the named responses of the calling tenant; another tenant's responses give nothing. The
    responses named are a page: the export pages the survey's answers and names each page's."""
    repository: ScoringRepository = uow.repository

    async def read() -> dict[str, Section]:
        if section not in (None, "scored_answers"):
            raise PageRequestError("section", "no such section; this service has scored_answers")
        return {"scored_answers": await repository.scored_answers(tenant.tenant_id, response_id)}

    return await data_answer("scoring", customer_id, read, limit=MAX_RESPONSE_IDS)
