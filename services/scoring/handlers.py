"""Scoring's event handlers. They load state, ask the domain, record the results and the outgoing
events in the unit of work, and return. They never commit."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import NPS_UPDATED, Contract, Event, NpsUpdated, SurveyResponded, new_event
from libs.common.kafka import RejectEvent
from services.scoring import repository
from services.scoring.domain.nps import Tally
from services.scoring.repository import TouchpointCounts

log = logging.getLogger(__name__)

SOURCE = "/nps/scoring"
_NPS_UPDATED_NAMESPACE = uuid.UUID("3b0e8f0c-9d4a-4f7e-8c61-2a5d7e9b4c13")

# Touchpoints come from the trigger's fixed list, so the label stays bounded; tenants are left out.
RESPONSES_TALLIED = Counter(
    "nps_scoring_responses_total",
    "Survey answers counted, by touchpoint and category",
    ["touchpoint", "category"],
)


def nps_updated_id(tenant_id: uuid.UUID, touchpoint: str, responses: int) -> str:
    """Totals only grow, so (tenant, touchpoint, responses) names one version of the score."""
    return str(uuid.uuid5(_NPS_UPDATED_NAMESPACE, f"{tenant_id}:{touchpoint}:{responses}"))


def _tenant_uuid(event: Event[Contract]) -> uuid.UUID:
    try:
        return uuid.UUID(event.tenant_id)
    except ValueError:
        raise RejectEvent(f"tenantid: {event.tenant_id!r} is not a tenant id") from None


async def record_responses(events: list[Event[Contract]], uow: UnitOfWork, *, now: datetime) -> None:
    """Count a batch of ``survey.responded`` answers into the running tallies and announce each
    touched touchpoint's new score with ``nps.updated``: one upsert for the whole batch."""
    increments: dict[tuple[uuid.UUID, str], Tally] = {}
    for event in events:
        answer = event.data
        if not isinstance(answer, SurveyResponded):
            continue
        key = (_tenant_uuid(event), answer.touchpoint)
        increments[key] = increments.get(key, Tally()).add(answer.score)
    if not increments:
        return
    totals = await repository.add_to_tallies(
        uow.session,
        [
            TouchpointCounts(tenant_id, touchpoint, tally)
            for (tenant_id, touchpoint), tally in increments.items()
        ],
        now,
    )
    for total in totals:
        uow.emit(_nps_updated(total, now))
    for (_, touchpoint), tally in increments.items():
        for category, count in tally.by_category().items():
            if count:
                RESPONSES_TALLIED.labels(touchpoint, category.value).inc(count)
    log.info(
        "nps.tallied",
        extra={"answers": sum(t.responses for t in increments.values()), "touchpoints": len(totals)},
    )


def _nps_updated(total: TouchpointCounts, now: datetime) -> Event[Contract]:
    tally = total.tally
    nps = tally.nps
    # The row was just incremented by at least one answer, so there is a score.
    assert nps is not None
    data = NpsUpdated(
        touchpoint=total.touchpoint,
        promoters=tally.promoters,
        passives=tally.passives,
        detractors=tally.detractors,
        responses=tally.responses,
        nps=nps,
        as_of=now,
    )
    return new_event(
        NPS_UPDATED,
        tenant_id=str(total.tenant_id),
        data=data,
        subject=total.touchpoint,
        source=SOURCE,
        event_id=nps_updated_id(total.tenant_id, total.touchpoint, tally.responses),
        time=now,
    )
