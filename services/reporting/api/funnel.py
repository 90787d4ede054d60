"""The funnel panel as JSON: sent, opened, clicked and answered with each step's share of the
invitations sent, and what else became of them, overall and per touchpoint; read from the daily
rollup (``reporting.funnel_days``) and, for a partial first or last day, from the facts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from libs.common.deps import UoW
from libs.common.events import FailureReason
from libs.common.web import TenantOrPerson
from services.reporting.api.params import Moments, TouchpointQuery, report_moments
from services.reporting.domain.display import share
from services.reporting.domain.funnel_days import FunnelCounts
from services.reporting.repository import ReportFilter, ReportingRepository

router = APIRouter(tags=["reports"])

PathStep = Literal["sent", "opened", "clicked", "answered"]
#: The path a person takes through an invitation, in order.
PATH: tuple[PathStep, ...] = ("sent", "opened", "clicked", "answered")
#: What else can become of an invitation, beside the path.
OTHER_STEPS = ("machine_opened", "reminded", "bounced", "unsubscribed", "expired", "failed")


class FunnelStepView(BaseModel):
    step: PathStep
    invitations: int = Field(description="invitations that reached the step, each counted once")
    share_of_sent: float | None = Field(
        description="invitations / sent (0-1, 4 decimals); null when none were sent"
    )


class FunnelPanel(BaseModel):
    steps: list[FunnelStepView] = Field(
        description="sent, opened (by a person), clicked, answered: always these four, in this order"
    )
    machine_opened: int = Field(
        description="opened only by a machine (Apple Mail Privacy Protection, a mail gateway on "
        "delivery): arrived, but not known to have been read"
    )
    reminded: int
    bounced: int
    unsubscribed: int
    expired: int
    failed: int = Field(description="never delivered: the survey gave them up (see failed_by_reason)")
    failed_by_reason: dict[FailureReason, int] = Field(description="invitations given up, by reason code")


class _OfTouchpoint(BaseModel):
    touchpoint: str


# After FunnelPanel, so that pydantic, which takes fields base-first, puts the touchpoint first.
class TouchpointFunnel(FunnelPanel, _OfTouchpoint):
    pass


class FunnelReport(BaseModel):
    since: datetime
    until: datetime
    overall: FunnelPanel
    by_touchpoint: list[TouchpointFunnel] = Field(description="in touchpoint name order")


Range = Annotated[Moments, Depends(report_moments)]


def _panel(funnel: FunnelCounts, answered: int) -> dict[str, object]:
    reached = {**funnel.steps, "answered": answered}
    sent = reached.get("sent", 0)
    rounded = (share(reached.get(step, 0), sent) for step in PATH)
    return {
        "steps": [
            FunnelStepView(
                step=step,
                invitations=reached.get(step, 0),
                share_of_sent=None if part is None else round(part, 4),
            )
            for step, part in zip(PATH, rounded, strict=True)
        ],
        **{step: funnel.steps.get(step, 0) for step in OTHER_STEPS},
        "failed_by_reason": dict(sorted(funnel.failed_by_reason.items())),
    }


def _total(funnels: list[FunnelCounts]) -> FunnelCounts:
    total = FunnelCounts()
    for funnel in funnels:
        for step, invitations in funnel.steps.items():
            total.add_step(step, invitations)
        for reason, invitations in funnel.failed_by_reason.items():
            total.add_failures(reason, invitations)
    return total


@router.get("/v1/reports/funnel")
async def get_funnel(
    tenant: TenantOrPerson, uow: UoW, moments: Range, touchpoint: TouchpointQuery = None
) -> FunnelReport:
    """What became of the invitations: sent, opened by a person, clicked and answered, each with
    its share of those sent, and opened only by a machine, reminded, bounced, unsubscribed,
    expired and given up (by reason), overall and per touchpoint, the same counts as the summary's
    funnel. Invitations count from when they were sent, steps from when they happened, answers
    from when they were given; ``since`` (inclusive, default 90 days before ``until``) and
    ``until`` (exclusive, default tomorrow) keep their time of day."""
    repository: ReportingRepository = uow.repository
    await repository.read_one_snapshot()
    where = ReportFilter(tenant.tenant_id, touchpoint, moments.since, moments.until)
    funnels = await repository.funnel_by_touchpoint(where)
    # Answered comes from the answers, as the summary's "responded" does.
    answered = {
        name: details.responded_invitations
        for name, details in (await repository.answer_details_by_touchpoint(where)).items()
    }
    names = sorted({*funnels, *answered})
    return FunnelReport(
        since=moments.since,
        until=moments.until,
        overall=FunnelPanel(**_panel(_total(list(funnels.values())), sum(answered.values()))),
        by_touchpoint=[
            TouchpointFunnel(
                touchpoint=name, **_panel(funnels.get(name, FunnelCounts()), answered.get(name, 0))
            )
            for name in names
        ],
    )
