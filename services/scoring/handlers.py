"""Scoring's event handlers. They load state, ask the domain, record the results and the outgoing
events in the unit of work, and return. They never commit."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import (
    Contract,
    Event,
    NpsUpdated,
    SurveyResponded,
    SurveyResponseUpdated,
    is_recovery_answer,
)
from services.scoring.domain.revisions import (
    FIRST_REVISION,
    HeldAnswer,
    TallyChange,
    first_count,
    latest,
    revise,
)
from services.scoring.repository import AnswerKey, ScoringRepository, TouchpointChange, TouchpointCounts

log = logging.getLogger(__name__)

_NPS_UPDATED_NAMESPACE = uuid.UUID("3b0e8f0c-9d4a-4f7e-8c61-2a5d7e9b4c13")

# Touchpoints come from the trigger's fixed list, so the label stays bounded; tenants are left out.
RESPONSES_TALLIED = Counter(
    "nps_scoring_responses_total",
    "Survey answers counted, by touchpoint and category",
    ["touchpoint", "category"],
)


SCORES_REVISED = Counter(
    "nps_scoring_scores_revised_total",
    "Answers moved to another category by a replaced score, by touchpoint",
    ["touchpoint"],
)


def nps_updated_id(tenant_id: uuid.UUID, touchpoint: str, version: int) -> str:
    """The tally's version names one state of the score. While answers were only ever added the
    version equalled the number of answers, so ids of scores announced before revisions stay."""
    return str(uuid.uuid5(_NPS_UPDATED_NAMESPACE, f"{tenant_id}:{touchpoint}:{version}"))


def _answer_of(event: Event[Contract]) -> tuple[AnswerKey, HeldAnswer] | None:
    data = event.data
    if is_recovery_answer(data):
        # A recovery survey's answer measures the follow-up (reporting's recovery rate), not the NPS.
        return None
    if isinstance(data, SurveyResponded):
        revision = FIRST_REVISION
    elif isinstance(data, SurveyResponseUpdated):
        revision = data.revision
    else:
        return None
    return (event.tenant, data.response_id), HeldAnswer(data.touchpoint, data.score, revision)


async def record_responses(
    events: list[Event[Contract]], uow: UnitOfWork[ScoringRepository], *, now: datetime
) -> None:
    """Count a batch of answers (``survey.responded``) and their revisions
    (``survey.response_updated``) into the running tallies, and announce each changed touchpoint's
    new score with ``nps.updated``.

    Statements per batch, not per answer: one insert of the answers, and for those already held
    one locking read and one update, then one upsert of the tallies.
    """
    arriving: dict[AnswerKey, HeldAnswer] = {}
    for event in events:
        found = _answer_of(event)
        if found is None:
            continue
        key, answer = found
        arriving[key] = latest(arriving[key], answer) if key in arriving else answer
    if not arriving:
        return
    changes: dict[tuple[uuid.UUID, str], tuple[TallyChange, int]] = {}

    def count(tenant_id: uuid.UUID, by_touchpoint: dict[str, TallyChange]) -> None:
        for touchpoint, change in by_touchpoint.items():
            total, steps = changes.get((tenant_id, touchpoint), (TallyChange(), 0))
            changes[(tenant_id, touchpoint)] = (total + change, steps + 1)

    repository = uow.repository
    new_keys = await repository.insert_new_answers(arriving, now)
    new_answers = 0
    for key in sorted(new_keys):
        count(key[0], first_count(arriving[key]))
        RESPONSES_TALLIED.labels(arriving[key].touchpoint, arriving[key].category.value).inc()
        new_answers += 1
    held = await repository.lock_answers(key for key in arriving if key not in new_keys)
    newer: dict[AnswerKey, HeldAnswer] = {}
    for key, stored in held.items():
        moved = revise(stored, arriving[key])
        if moved is None:
            continue
        newer[key] = arriving[key]
        count(key[0], moved)
        if moved:
            SCORES_REVISED.labels(arriving[key].touchpoint).inc()
    await repository.update_answers(newer, now)
    totals = await repository.change_tallies(
        [
            TouchpointChange(tenant_id, touchpoint, change, steps)
            for (tenant_id, touchpoint), (change, steps) in changes.items()
            if not change.is_empty
        ],
        now,
    )
    for total in totals:
        _emit_nps_updated(uow, total, now)
    log.info(
        "nps.tallied",
        extra={"answers": new_answers, "revised": len(newer), "touchpoints": len(totals)},
    )


def _emit_nps_updated(uow: UnitOfWork, total: TouchpointCounts, now: datetime) -> None:
    tally = total.tally
    nps = tally.nps
    # The row was just changed by an answer counted or moved, so it holds at least one answer.
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
    uow.emit(
        data,
        tenant_id=total.tenant_id,
        subject=total.touchpoint,
        event_id=nps_updated_id(total.tenant_id, total.touchpoint, total.version),
        time=now,
    )
