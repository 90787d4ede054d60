"""Scoring's event handlers. They load state, ask the domain, record the results and the outgoing
events in the unit of work, and return. They never commit."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from prometheus_client import Counter

from libs.common import nps as maths
from libs.common.db import UnitOfWork
from libs.common.events import (
    MAX_CELL_CURRENCIES,
    Contract,
    ErasureRequested,
    Event,
    NpsInterval,
    NpsSegment,
    NpsUpdated,
    NpsWindow,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    is_recovery_answer,
)
from libs.common.events import CellSpend as EventSpend
from libs.common.metrics import BoundedLabel
from services.scoring.domain.cells import (
    Bins,
    Bucket,
    CellChange,
    CellKey,
    CountedAnswer,
    Rollup,
    all_time,
    bucket_end,
    first_count,
    revision,
    utc_day,
)
from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import FIRST_REVISION, HeldAnswer, latest, revise
from services.scoring.domain.segments import KnownValues, segments_of
from services.scoring.domain.spend import (
    CellSpend,
    GroupSpend,
    SpendRollup,
    first_spend,
    revised_spend,
    snapshot_of,
)
from services.scoring.repository import (
    AnswerKey,
    CellState,
    ScoringRepository,
    TouchpointChange,
    TouchpointCounts,
)

log = logging.getLogger(__name__)

_NPS_UPDATED_NAMESPACE = uuid.UUID("3b0e8f0c-9d4a-4f7e-8c61-2a5d7e9b4c13")

# A tenant names its own touchpoints, as many as it likes: the label admits the first
# TOUCHPOINT_LABELS names this process sees and counts the rest as "other". Tenants are left out.
TOUCHPOINT_LABELS = 100
TOUCHPOINT_LABEL = BoundedLabel(TOUCHPOINT_LABELS)
RESPONSES_TALLIED = Counter(
    "nps_scoring_responses_total",
    "Survey answers counted, by touchpoint and category",
    ["touchpoint", "category"],
)


SPEND_CURRENCIES_LEFT_OUT = Counter(
    "nps_scoring_spend_currencies_left_out_total",
    "Currencies of a cell's spend beyond the 20 an nps.updated event carries",
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


def cell_updated_id(key: CellKey, version: int) -> str:
    """One state of one cell. Only the value is free text and every part after it has a fixed
    shape, so two cells never share an id, nor a cell the all-time tally of :func:`nps_updated_id`."""
    parts = (key.tenant_id, key.touchpoint, key.dimension, key.value, key.bucket, key.start.isoformat())
    return str(uuid.uuid5(_NPS_UPDATED_NAMESPACE, ":".join(map(str, (*parts, version)))))


@dataclass(frozen=True, slots=True)
class _Arriving:
    answer: HeldAnswer
    responded_at: datetime
    context: SurveyContext | None
    customer_id: str | None = None


def _answer_of(event: Event[Contract]) -> tuple[AnswerKey, _Arriving] | None:
    data = event.data
    if is_recovery_answer(data):
        # A recovery survey's answer measures the follow-up (reporting's recovery rate), not the NPS.
        return None
    if isinstance(data, SurveyResponded):
        revision_number = FIRST_REVISION
    elif isinstance(data, SurveyResponseUpdated):
        revision_number = data.revision
    else:
        return None
    answer = HeldAnswer(data.touchpoint, data.score, revision_number)
    return (event.tenant, data.response_id), _Arriving(
        answer, data.responded_at, data.context, data.customer_id
    )


def _arriving_answers(events: list[Event[Contract]]) -> dict[AnswerKey, _Arriving]:
    """The latest version of each answer in the batch."""
    arriving: dict[AnswerKey, _Arriving] = {}
    for event in events:
        found = _answer_of(event)
        if found is None:
            continue
        key, version = found
        held = arriving.get(key)
        if held is None or latest(held.answer, version.answer) is not held.answer:
            arriving[key] = version
    return arriving


def _snapshot(item: _Arriving) -> tuple[tuple[str, int], ...]:
    spend = None if item.context is None else item.context.spend_12m
    return snapshot_of(None if spend is None else ((money.currency, money.amount_minor) for money in spend))


async def _as_counted(
    repository: ScoringRepository, arriving: dict[AnswerKey, _Arriving], now: datetime
) -> dict[AnswerKey, CountedAnswer]:
    """Each answer as it would be counted if new: its UTC date and its segments, bounded to the
    values its tenant's dimensions hold (one read of the declarations, one of the values, one
    insert of the values first seen; a lock and a second read when the batch admits new values)."""
    declared = await repository.declared_dimensions(key[0] for key in arriving)
    raw = {key: segments_of(item.context, declared.get(key[0], ())) for key, item in arriving.items()}
    wanted = {(key[0], segment.dimension) for key, segments in raw.items() for segment in segments}

    def bounded(values: KnownValues) -> dict[AnswerKey, CountedAnswer]:
        return {
            key: CountedAnswer(
                item.answer, utc_day(item.responded_at), values.bounded(key[0], raw[key]), _snapshot(item)
            )
            for key, item in sorted(arriving.items())
        }

    values = KnownValues(await repository.known_values(wanted))
    counted = bounded(values)
    if values.new_values():
        # Another consumer may be admitting values to the same dimensions: take turns, then count
        # again from what is known now, so a dimension never holds more than the bound. (Only the
        # dimensions seen admitting can admit again: known values never go away.)
        await repository.lock_dimensions(
            {(tenant, segment.dimension) for tenant, segment in values.new_values()}
        )
        values = KnownValues(await repository.known_values(wanted))
        counted = bounded(values)
    await repository.add_values(values.new_values(), now)
    return counted


@dataclass(slots=True)
class _Batch:
    """What a batch changes: cells, their spend, and the all-time tallies."""

    cells: Rollup[CellKey] = field(default_factory=Rollup)
    spend: SpendRollup = field(default_factory=SpendRollup)
    touchpoints: Rollup[tuple[uuid.UUID, str]] = field(default_factory=Rollup)

    def count(
        self, tenant_id: uuid.UUID, changes: dict[CellKey, Bins], spend: dict[CellKey, CellSpend]
    ) -> None:
        self.cells.add(changes)
        self.spend.add(spend)
        self.touchpoints.add({(tenant_id, name): bins for name, bins in all_time(changes).items()})

    def changed_cells(self, spent: dict[CellKey, CellSpend]) -> dict[CellKey, CellChange]:
        """The cells whose counts or spend changed (moves of answers with different snapshots can
        cancel out in the counts and not in the spend): each is announced at a new version."""
        return {
            key: change
            for key, change in self.cells.changes.items()
            if not change.bins.is_empty or key in spent
        }


async def _count(
    uow: UnitOfWork[ScoringRepository], arriving: dict[AnswerKey, _Arriving], now: datetime
) -> tuple[_Batch, int, dict[AnswerKey, HeldAnswer]]:
    """Count the new answers and move the revised ones; return the batch's changes, how many
    answers were new and the newer versions stored. Counters move when the unit commits."""
    repository = uow.repository
    counted = await _as_counted(repository, arriving, now)
    new_keys = await repository.insert_new_answers(
        counted, now, customers={key: version.customer_id for key, version in arriving.items()}
    )
    batch = _Batch()
    for key in sorted(new_keys):
        batch.count(key[0], first_count(key[0], counted[key]), first_spend(key[0], counted[key]))
        answer = arriving[key].answer
        uow.count(RESPONSES_TALLIED.labels(TOUCHPOINT_LABEL(answer.touchpoint), answer.category.value))
    held = await repository.lock_answers(key for key in arriving if key not in new_keys)
    newer: dict[AnswerKey, HeldAnswer] = {}
    for key, stored in sorted(held.items()):
        moved = revision(key[0], stored, arriving[key].answer)
        if moved is None:
            continue
        newer[key] = arriving[key].answer
        batch.count(key[0], moved, revised_spend(key[0], stored, newer[key]) or {})
        if revise(stored.answer, newer[key]):
            uow.count(SCORES_REVISED.labels(TOUCHPOINT_LABEL(newer[key].touchpoint)))
    await repository.update_answers(newer, now)
    return batch, len(new_keys), newer


async def record_responses(
    events: list[Event[Contract]], uow: UnitOfWork[ScoringRepository], *, now: datetime
) -> None:
    """Count a batch of answers (``survey.responded``) and their revisions
    (``survey.response_updated``) into the cells, their spend and the running tallies, and announce
    each changed cell's and touchpoint's new state with ``nps.updated``.

    Statements per batch, not per answer: two reads and one insert for the segments (two more when
    new values are admitted), one insert of the answers, and for those already held one locking
    read and one update, then one upsert of the tallies, one of the cells, one of their spend and
    one read of the changed cells' spend.
    """
    arriving = _arriving_answers(events)
    if not arriving:
        return
    repository = uow.repository
    batch, new, newer = await _count(uow, arriving, now)
    changed = [
        TouchpointChange(tenant_id, name, change.bins.tally_change(), change.steps, change.bins)
        for (tenant_id, name), change in batch.touchpoints.changed().items()
    ]
    totals = await repository.change_tallies(changed, now)
    spent = batch.spend.changed()
    states = await repository.change_cells(batch.changed_cells(spent), now)
    await repository.change_spend(spent, now)
    spend = await repository.spend_of_cells(state.key for state in states)
    for total in totals:
        _emit_nps_updated(uow, total, now)
    for state in states:
        _emit_cell_updated(uow, state, spend.get(state.key, {}), now)
    log.info(
        "nps.tallied",
        extra={"answers": new, "revised": len(newer), "touchpoints": len(totals), "cells": len(states)},
    )


def _score(
    tally: Tally, distribution: tuple[int, ...] | None, as_of: datetime, **where: object
) -> NpsUpdated:
    interval = maths.interval(tally)
    return NpsUpdated.model_validate(
        {
            "promoters": tally.promoters,
            "passives": tally.passives,
            "detractors": tally.detractors,
            "responses": tally.responses,
            # Only a revision that moves an answer to another touchpoint can empty a cell.
            "nps": tally.nps if tally.nps is not None else 0.0,
            "as_of": as_of,
            "distribution": None if distribution is None else list(distribution),
            "confidence_interval": None
            if interval is None
            else NpsInterval(low=interval.low, high=interval.high, level=interval.level),
            **where,
        }
    )


def _emit_nps_updated(uow: UnitOfWork, total: TouchpointCounts, now: datetime) -> None:
    data = _score(total.tally, total.distribution, now, touchpoint=total.touchpoint, version=total.version)
    uow.emit(
        data,
        tenant_id=total.tenant_id,
        subject=total.touchpoint,
        event_id=nps_updated_id(total.tenant_id, total.touchpoint, total.version),
        time=now,
    )


# A batch announces many cells of the same few windows and segments; the models are frozen.
@functools.lru_cache(maxsize=4096)
def _window(bucket: Bucket, start: date) -> NpsWindow:
    return NpsWindow(bucket=bucket, start=start, end=bucket_end(bucket, start))


@functools.lru_cache(maxsize=4096)
def _segment(dimension: str, value: str) -> NpsSegment | None:
    return NpsSegment(dimension=dimension, value=value) if dimension else None


def _announced_spend(uow: UnitOfWork, spend: Mapping[str, GroupSpend]) -> list[EventSpend]:
    """A cell's spend as the event carries it: in currency order, the first 20 (the contract's
    bound; the rest stay in scoring's table and are counted as left out)."""
    ordered = sorted(spend.items())
    if len(ordered) > MAX_CELL_CURRENCIES:
        uow.count(SPEND_CURRENCIES_LEFT_OUT, len(ordered) - MAX_CELL_CURRENCIES)
    return [
        EventSpend(
            currency=currency,
            promoters=amounts.promoters,
            passives=amounts.passives,
            detractors=amounts.detractors,
        )
        for currency, amounts in ordered[:MAX_CELL_CURRENCIES]
    ]


def _emit_cell_updated(
    uow: UnitOfWork, state: CellState, spend: Mapping[str, GroupSpend], now: datetime
) -> None:
    key = state.key
    data = _score(
        state.bins.tally(),
        state.bins.counts,
        now,
        touchpoint=key.touchpoint,
        version=state.version,
        window=_window(key.bucket, key.start),
        segment=_segment(key.dimension, key.value),
        spend=_announced_spend(uow, spend),
    )
    uow.emit(
        data,
        tenant_id=key.tenant_id,
        subject=key.touchpoint,
        event_id=cell_updated_id(key, state.version),
        time=now,
    )


async def erase_customer(
    uow: UnitOfWork[Any], tenant_id: uuid.UUID, request: ErasureRequested, now: datetime
) -> dict[str, int]:
    """Scoring's part of an erasure: the customer's answers are unlinked, the counts untouched, so no
    cell changes and no ``nps.updated`` is sent."""
    repository: ScoringRepository = uow.repository
    return {"answers": await repository.erase_customer(tenant_id, request.customer_id)}
