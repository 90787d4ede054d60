"""Every query scoring makes, as one object over a unit of work's session."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer, TallyChange
from services.scoring.models import ScoredAnswer, TouchpointTally

AnswerKey = tuple[uuid.UUID, uuid.UUID]


@dataclass(frozen=True, slots=True)
class TouchpointCounts:
    tenant_id: uuid.UUID
    touchpoint: str
    tally: Tally
    version: int = 0


@dataclass(frozen=True, slots=True)
class TouchpointChange:
    tenant_id: uuid.UUID
    touchpoint: str
    change: TallyChange
    #: How many answers were counted or moved: the tally's version grows by that much.
    steps: int


def _answer_row(key: AnswerKey, answer: HeldAnswer, at: datetime) -> dict[str, object]:
    return {
        "tenant_id": key[0],
        "response_id": key[1],
        "touchpoint": answer.touchpoint,
        "score": answer.score,
        "revision": answer.revision,
        "updated_at": at,
    }


class ScoringRepository:
    """Scoring's queries over one transaction's session (``uow.repository``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new_answers(
        self, answers: Mapping[AnswerKey, HeldAnswer], at: datetime
    ) -> set[AnswerKey]:
        """Insert the answers scoring has not held yet, in one statement; return their keys.

        An answer inserted here is new for certain: a concurrent insert of the same answer makes this
        one wait and then skip it, so no answer is ever counted as new twice.
        """
        if not answers:
            return set()
        rows = [_answer_row(key, answer, at) for key, answer in sorted(answers.items())]
        statement = (
            pg_insert(ScoredAnswer)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[ScoredAnswer.tenant_id, ScoredAnswer.response_id])
            .returning(ScoredAnswer.tenant_id, ScoredAnswer.response_id)
        )
        return {(row.tenant_id, row.response_id) for row in await self.session.execute(statement)}

    async def lock_answers(self, keys: Iterable[AnswerKey]) -> dict[AnswerKey, HeldAnswer]:
        """The held versions of these answers, locked until the transaction ends, in one query."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        query = (
            select(
                ScoredAnswer.tenant_id,
                ScoredAnswer.response_id,
                ScoredAnswer.touchpoint,
                ScoredAnswer.score,
                ScoredAnswer.revision,
            )
            .where(tuple_(ScoredAnswer.tenant_id, ScoredAnswer.response_id).in_(wanted))
            .order_by(ScoredAnswer.tenant_id, ScoredAnswer.response_id)
            .with_for_update()
        )
        return {
            (row.tenant_id, row.response_id): HeldAnswer(row.touchpoint, row.score, row.revision)
            for row in await self.session.execute(query)
        }

    async def update_answers(self, answers: Mapping[AnswerKey, HeldAnswer], at: datetime) -> None:
        """Store newer versions of held (and locked) answers: one executemany for the batch."""
        if answers:
            rows = [_answer_row(key, answer, at) for key, answer in sorted(answers.items())]
            await self.session.execute(update(ScoredAnswer), rows)

    async def change_tallies(
        self, changes: Sequence[TouchpointChange], at: datetime
    ) -> list[TouchpointCounts]:
        """Apply a batch's signed changes to the running counts in one statement; return the totals.

        Changing counts in SQL (rather than read, add, write) keeps concurrent consumers from losing
        each other's answers; sorting the rows makes them lock in the same order, so they cannot
        deadlock either.
        """
        if not changes:
            return []
        rows = [
            {
                "tenant_id": item.tenant_id,
                "touchpoint": item.touchpoint,
                "promoters": item.change.promoters,
                "passives": item.change.passives,
                "detractors": item.change.detractors,
                "version": item.steps,
                "updated_at": at,
            }
            for item in sorted(changes, key=lambda item: (item.tenant_id, item.touchpoint))
        ]
        insert = pg_insert(TouchpointTally).values(rows)
        excluded = insert.excluded
        statement = insert.on_conflict_do_update(
            index_elements=[TouchpointTally.tenant_id, TouchpointTally.touchpoint],
            set_={
                "promoters": TouchpointTally.promoters + excluded.promoters,
                "passives": TouchpointTally.passives + excluded.passives,
                "detractors": TouchpointTally.detractors + excluded.detractors,
                "version": TouchpointTally.version + excluded.version,
                "updated_at": excluded.updated_at,
            },
        ).returning(
            TouchpointTally.tenant_id,
            TouchpointTally.touchpoint,
            TouchpointTally.promoters,
            TouchpointTally.passives,
            TouchpointTally.detractors,
            TouchpointTally.version,
        )
        return [
            TouchpointCounts(
                row.tenant_id, row.touchpoint, Tally(row.promoters, row.passives, row.detractors), row.version
            )
            for row in await self.session.execute(statement)
        ]

    async def tallies_of_tenant(
        self, tenant_id: uuid.UUID, touchpoint: str | None = None
    ) -> list[TouchpointCounts]:
        query = select(
            TouchpointTally.touchpoint,
            TouchpointTally.promoters,
            TouchpointTally.passives,
            TouchpointTally.detractors,
        ).where(TouchpointTally.tenant_id == tenant_id)
        if touchpoint is not None:
            query = query.where(TouchpointTally.touchpoint == touchpoint)
        rows = await self.session.execute(query.order_by(TouchpointTally.touchpoint))
        return [
            TouchpointCounts(tenant_id, row.touchpoint, Tally(row.promoters, row.passives, row.detractors))
            for row in rows
        ]
