"""An in-memory :class:`ScoringRepository`, for unit tests that drive scoring's handler.

The held answers and the running tallies live in dicts; a query it does not override fails, since
the fake has no session. Hand it to :class:`tests.support.fakes.FakeUnitOfWork`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer
from services.scoring.repository import AnswerKey, ScoringRepository, TouchpointChange, TouchpointCounts


class FakeScoringRepository(ScoringRepository):
    def __init__(self) -> None:
        # No session: a query this fake does not override fails on ``self.session``.
        self.answers: dict[AnswerKey, HeldAnswer] = {}
        self.tallies: dict[tuple[uuid.UUID, str], TouchpointCounts] = {}

    async def insert_new_answers(
        self, answers: Mapping[AnswerKey, HeldAnswer], at: datetime
    ) -> set[AnswerKey]:
        new = {key for key in answers if key not in self.answers}
        for key in new:
            self.answers[key] = answers[key]
        return new

    async def lock_answers(self, keys: Iterable[AnswerKey]) -> dict[AnswerKey, HeldAnswer]:
        return {key: self.answers[key] for key in set(keys) if key in self.answers}

    async def update_answers(self, answers: Mapping[AnswerKey, HeldAnswer], at: datetime) -> None:
        self.answers.update(answers)

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
            self.tallies[key] = TouchpointCounts(
                item.tenant_id, item.touchpoint, tally, held.version + item.steps
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
