"""An in-memory :class:`ScoringRepository`, for unit tests that drive scoring's handler.

The held answers, the running tallies, the cells and the segment values live in dicts; a query it
does not override fails, since the fake has no session. Hand it to
:class:`tests.support.fakes.FakeUnitOfWork`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from services.scoring.domain.cells import ZERO, Bins, CellChange, CellKey, CountedAnswer
from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer
from services.scoring.domain.segments import Segment
from services.scoring.domain.spend import GroupSpend
from services.scoring.repository import (
    AnswerKey,
    CellQuery,
    CellState,
    ScoringRepository,
    TouchpointChange,
    TouchpointCounts,
)


class FakeScoringRepository(ScoringRepository):
    def __init__(self) -> None:
        # No session: a query this fake does not override fails on ``self.session``.
        self.answers: dict[AnswerKey, CountedAnswer] = {}
        self.tallies: dict[tuple[uuid.UUID, str], TouchpointCounts] = {}
        self.cells: dict[CellKey, CellState] = {}
        self.dimensions: dict[uuid.UUID, list[str]] = {}
        self.values: dict[tuple[uuid.UUID, str], set[str]] = {}
        self.locked_dimensions: set[tuple[uuid.UUID, str]] = set()
        self.spend: dict[CellKey, dict[str, GroupSpend]] = {}

    async def insert_new_answers(
        self,
        answers: Mapping[AnswerKey, CountedAnswer],
        at: datetime,
        *,
        customers: Mapping[AnswerKey, str | None] | None = None,
    ) -> set[AnswerKey]:
        new = {key for key in answers if key not in self.answers}
        for key in new:
            self.answers[key] = answers[key]
        return new

    async def lock_answers(self, keys: Iterable[AnswerKey]) -> dict[AnswerKey, CountedAnswer]:
        return {key: self.answers[key] for key in set(keys) if key in self.answers}

    async def update_answers(self, answers: Mapping[AnswerKey, HeldAnswer], at: datetime) -> None:
        for key, answer in answers.items():
            self.answers[key] = replace(self.answers[key], answer=answer)

    async def change_tallies(
        self, changes: Sequence[TouchpointChange], at: datetime
    ) -> list[TouchpointCounts]:
        totals = []
        for item in sorted(changes, key=lambda item: (item.tenant_id, item.touchpoint)):
            key = (item.tenant_id, item.touchpoint)
            held = self.tallies.get(key, TouchpointCounts(item.tenant_id, item.touchpoint, Tally()))
            tally = Tally(
                held.tally.promoters + item.change.promoters,
                held.tally.passives + item.change.passives,
                held.tally.detractors + item.change.detractors,
            )
            distribution = (Bins(held.distribution or ZERO.counts) + item.bins).counts
            self.tallies[key] = TouchpointCounts(
                item.tenant_id, item.touchpoint, tally, held.version + item.steps, distribution
            )
            totals.append(self.tallies[key])
        return totals

    async def tallies_of_tenant(
        self, tenant_id: uuid.UUID, touchpoint: str | None = None
    ) -> list[TouchpointCounts]:
        return [
            counts
            for (tenant, name), counts in sorted(self.tallies.items())
            if tenant == tenant_id and touchpoint in (None, name)
        ]

    async def change_cells(self, changes: Mapping[CellKey, CellChange], at: datetime) -> list[CellState]:
        states = []
        for key, change in sorted(changes.items()):
            held = self.cells.get(key, CellState(key, ZERO, 0))
            bins = held.bins + change.bins
            if min(bins.counts) < 0:
                raise AssertionError(f"a cell's count went negative: {key} {bins}")
            self.cells[key] = CellState(key, bins, held.version + change.steps)
            states.append(self.cells[key])
        return states

    async def change_spend(self, changes: Mapping[CellKey, Mapping[str, GroupSpend]], at: datetime) -> None:
        for key, spend in changes.items():
            held = self.spend.setdefault(key, {})
            for currency, change in spend.items():
                total = held.get(currency, GroupSpend()) + change
                if min(total.promoters, total.passives, total.detractors) < 0:
                    raise AssertionError(f"a cell's spend went negative: {key} {currency} {total}")
                held[currency] = total

    async def spend_of_cells(self, keys: Iterable[CellKey]) -> dict[CellKey, dict[str, GroupSpend]]:
        return {key: dict(self.spend[key]) for key in set(keys) if key in self.spend}

    async def declared_dimensions(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        return {tenant: self.dimensions[tenant] for tenant in set(tenant_ids) if tenant in self.dimensions}

    async def declare_dimensions(self, tenant_id: uuid.UUID, dimensions: Sequence[str]) -> None:
        self.dimensions[tenant_id] = list(dimensions)

    async def known_values(
        self, dimensions: Iterable[tuple[uuid.UUID, str]]
    ) -> dict[tuple[uuid.UUID, str], set[str]]:
        return {key: set(self.values[key]) for key in set(dimensions) if key in self.values}

    async def lock_dimensions(self, dimensions: Iterable[tuple[uuid.UUID, str]]) -> None:
        self.locked_dimensions = set(dimensions)

    async def add_values(self, values: Iterable[tuple[uuid.UUID, Segment]], at: datetime) -> None:
        for tenant, segment in values:
            self.values.setdefault((tenant, segment.dimension), set()).add(segment.value)

    async def cell_tallies(
        self, tenant_id: uuid.UUID, where: CellQuery, touchpoint: str | None = None
    ) -> list[TouchpointCounts]:
        sums: dict[str, Bins] = {}
        for key, state in sorted(self.cells.items()):
            if (key.tenant_id, key.dimension, key.value, key.bucket) != (
                tenant_id,
                where.dimension,
                where.value,
                where.bucket,
            ) or touchpoint not in (None, key.touchpoint):
                continue
            if (where.since and key.start < where.since) or (where.until and key.start >= where.until):
                continue
            sums[key.touchpoint] = sums.get(key.touchpoint, ZERO) + state.bins
        return [
            TouchpointCounts(tenant_id, name, bins.tally(), distribution=bins.counts)
            for name, bins in sorted(sums.items())
        ]
