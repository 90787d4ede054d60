"""HTTP routes of scoring: a tenant's Net Promoter Score, overall and per touchpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from libs.common.deps import Tenant, UoW
from services.scoring.domain.nps import Tally
from services.scoring.repository import ScoringRepository

router = APIRouter(tags=["scores"])

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


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


@router.get("/v1/nps")
async def get_nps(
    tenant: Tenant,
    uow: UoW,
    touchpoint: Annotated[
        str | None, Query(pattern=TOUCHPOINT_PATTERN, description="only this touchpoint, e.g. support-ticket")
    ] = None,
) -> NpsReport:
    """The tenant's Net Promoter Score from every answer counted so far, with its 95 % confidence
    interval, overall and per touchpoint.

    Promoters answered 9-10, passives 7-8, detractors 0-6; NPS is the promoters' share minus the
    detractors' share, in points. Answers are counted a moment after they are given.
    """
    repository: ScoringRepository = uow.repository
    rows = await repository.tallies_of_tenant(tenant.tenant_id, touchpoint)
    overall = sum((row.tally for row in rows), Tally())
    return NpsReport(
        **_fields(overall),
        by_touchpoint=[TouchpointNpsView(touchpoint=row.touchpoint, **_fields(row.tally)) for row in rows],
    )
