"""Every query scoring makes, as one object over a unit of work's session."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Row, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.privacy import KeysetSection, Section, section_page
from services.scoring.domain.cells import ZERO, Bins, CellChange, CellKey, CountedAnswer
from services.scoring.domain.nps import Tally
from services.scoring.domain.revisions import HeldAnswer, TallyChange
from services.scoring.domain.segments import Segment
from services.scoring.domain.spend import GroupSpend
from services.scoring.models import (
    SCORE_COLUMNS,
    Cell,
    ScoredAnswer,
    SegmentDimension,
    SegmentValue,
    TouchpointTally,
)

AnswerKey = tuple[uuid.UUID, uuid.UUID]


@dataclass(frozen=True, slots=True)
class TouchpointCounts:
    tenant_id: uuid.UUID
    touchpoint: str
    tally: Tally
    version: int = 0
    #: Answers per score, 0-10; None where the tally counts answers held before scores were kept.
    distribution: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TouchpointChange:
    tenant_id: uuid.UUID
    touchpoint: str
    change: TallyChange
    #: How many answers were counted or moved: the tally's version grows by that much.
    steps: int
    bins: Bins = ZERO


@dataclass(frozen=True, slots=True)
class CellQuery:
    """Which cells to sum: one segment (``''``/``''`` for everybody), one bucket, a range of starts."""

    dimension: str = ""
    value: str = ""
    bucket: str = "month"
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True, slots=True)
class CellState:
    """A cell's absolute state after a change."""

    key: CellKey
    bins: Bins
    version: int


def _answer_row(key: AnswerKey, answer: HeldAnswer, at: datetime) -> dict[str, object]:
    return {
        "tenant_id": key[0],
        "response_id": key[1],
        "touchpoint": answer.touchpoint,
        "score": answer.score,
        "revision": answer.revision,
        "updated_at": at,
    }


def _bins_of(row: Row[tuple[object, ...]] | object) -> Bins:
    return Bins(tuple(int(getattr(row, name)) for name in SCORE_COLUMNS))


def _distribution_of(row: object, tally: Tally) -> tuple[int, ...] | None:
    counts = _bins_of(row).counts
    return counts if sum(counts) == tally.responses else None


# Arrays rather than a VALUES list: one cached statement whatever the batch size.
_INSERT_ANSWERS = text(
    "INSERT INTO scoring.answers "
    "(tenant_id, response_id, touchpoint, score, revision, updated_at, responded_on, segments, spend, "
    "customer_id) "
    "SELECT a.tenant_id, a.response_id, a.touchpoint, a.score, a.revision, :at, a.responded_on, "
    "CAST(a.segments AS jsonb), CAST(a.spend AS jsonb), a.customer_id "
    "FROM unnest(CAST(:tenant_ids AS uuid[]), "
    "CAST(:response_ids AS uuid[]), CAST(:touchpoints AS text[]), CAST(:scores AS smallint[]), "
    "CAST(:revisions AS integer[]), CAST(:days AS date[]), CAST(:segments AS text[]), "
    "CAST(:spend AS text[]), CAST(:customer_ids AS text[])) WITH ORDINALITY "
    "AS a(tenant_id, response_id, touchpoint, score, revision, responded_on, segments, spend, customer_id, "
    "position) "
    "ORDER BY a.position ON CONFLICT (tenant_id, response_id) DO NOTHING RETURNING tenant_id, response_id"
)


def _cell_key(key: CellKey) -> tuple[object, ...]:
    return (key.tenant_id, key.touchpoint, key.dimension, key.value, key.bucket, key.start)


_LOCK_DIMENSIONS = text(
    "SELECT pg_advisory_xact_lock(lock) FROM (SELECT hashtextextended(key, 0) AS lock "
    "FROM unnest(CAST(:keys AS text[])) AS key ORDER BY lock) AS ordered"
)
_CELL_KEY_COLUMNS = ("tenant_id", "touchpoint", "dimension", "value", "bucket", "start")
_CELL_ARRAY_TYPES = ("uuid", "text", "text", "text", "text", "date", *("bigint",) * 11, "bigint")
_CELL_COLUMNS = (*_CELL_KEY_COLUMNS, *SCORE_COLUMNS, "version")
# unnest() of one array per column: one cached statement whatever the batch size, and no limit on
# parameters; WITH ORDINALITY keeps the rows in the order given, which is what locks them in order.
_CHANGE_CELLS = text(
    f"INSERT INTO scoring.cells ({', '.join(_CELL_COLUMNS)}, updated_at) "
    f"SELECT {', '.join(f'c.{name}' for name in _CELL_COLUMNS)}, :at FROM unnest("
    + ", ".join(
        f"CAST(:{name} AS {kind}[])" for name, kind in zip(_CELL_COLUMNS, _CELL_ARRAY_TYPES, strict=True)
    )
    + f") WITH ORDINALITY AS c({', '.join(_CELL_COLUMNS)}, position) ORDER BY c.position "
    f"ON CONFLICT ({', '.join(_CELL_KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(f"{name} = cells.{name} + excluded.{name}" for name in (*SCORE_COLUMNS, "version"))
    + f", updated_at = excluded.updated_at RETURNING {', '.join(_CELL_COLUMNS)}"
)


_SPEND_ARRAY_TYPES = ("uuid", "text", "text", "text", "text", "date", "text", "bigint", "bigint", "bigint")
_SPEND_COLUMNS = (*_CELL_KEY_COLUMNS, "currency", "promoters", "passives", "detractors")
_CHANGE_SPEND = text(
    f"INSERT INTO scoring.spend_cells ({', '.join(_SPEND_COLUMNS)}, updated_at) "
    f"SELECT {', '.join(f's.{name}' for name in _SPEND_COLUMNS)}, :at FROM unnest("
    + ", ".join(
        f"CAST(:{name} AS {kind}[])" for name, kind in zip(_SPEND_COLUMNS, _SPEND_ARRAY_TYPES, strict=True)
    )
    + f") WITH ORDINALITY AS s({', '.join(_SPEND_COLUMNS)}, position) ORDER BY s.position "
    f"ON CONFLICT ({', '.join((*_CELL_KEY_COLUMNS, 'currency'))}) DO UPDATE SET "
    + ", ".join(f"{name} = spend_cells.{name} + excluded.{name}" for name in _SPEND_COLUMNS[-3:])
    + ", updated_at = excluded.updated_at"
)
_SPEND_OF_CELLS = text(
    f"SELECT {', '.join(f's.{name}' for name in _SPEND_COLUMNS)} FROM scoring.spend_cells AS s "
    "JOIN unnest("
    + ", ".join(
        f"CAST(:{name} AS {kind}[])" for name, kind in zip(_CELL_KEY_COLUMNS, _CELL_ARRAY_TYPES, strict=False)
    )
    + f") AS k({', '.join(_CELL_KEY_COLUMNS)}) USING ({', '.join(_CELL_KEY_COLUMNS)}) "
    "ORDER BY s.currency"
)


def _arrays(columns: Sequence[str], rows: Sequence[tuple[object, ...]]) -> dict[str, list[object]]:
    return {name: list(values) for name, values in zip(columns, zip(*rows, strict=True), strict=True)}


@dataclass(frozen=True)
class TouchpointTotal:
    tenant_id: str | None
    touchpoint: str
    promoters: int
    passives: int
    detractors: int


class ScoringRepository:
    """Scoring's queries over one transaction's session (``uow.repository``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- Privacy: a customer's data (export) ----------------------------------------------------

    async def scored_answers(self, tenant_id: uuid.UUID, response_ids: Sequence[uuid.UUID]) -> Section:
        """The answers scoring counts, of these responses of this tenant. Scoring keeps answers by
        response, not by customer: the export names the customer's responses (the survey's part), at
        most a page of them, so this is one page."""
        return await section_page(
            self.session,
            KeysetSection(
                select(
                    ScoredAnswer.response_id,
                    ScoredAnswer.touchpoint,
                    ScoredAnswer.score,
                    ScoredAnswer.revision,
                    ScoredAnswer.responded_on,
                    ScoredAnswer.segments,
                    ScoredAnswer.spend,
                    ScoredAnswer.updated_at,
                ).where(
                    ScoredAnswer.tenant_id == tenant_id,
                    ScoredAnswer.response_id.in_(sorted(set(response_ids))),
                ),
                (ScoredAnswer.responded_on, ScoredAnswer.response_id),
            ),
            limit=max(len(response_ids), 1),
        )

    async def touchpoint_totals(self, *, by_tenant: bool) -> list[TouchpointTotal]:
        """Answers counted per touchpoint (and tenant, if asked) by NPS group, summed from the
        running tallies: one row per tenant and touchpoint, a small table."""
        keys = (
            [TouchpointTally.tenant_id, TouchpointTally.touchpoint]
            if by_tenant
            else [TouchpointTally.touchpoint]
        )
        rows = await self.session.execute(
            select(
                *keys,
                func.sum(TouchpointTally.promoters),
                func.sum(TouchpointTally.passives),
                func.sum(TouchpointTally.detractors),
            ).group_by(*keys)
        )
        totals = []
        for row in rows:
            values = tuple(row)
            tenant = str(values[0]) if by_tenant else None
            touchpoint, promoters, passives, detractors = values[-4:]
            totals.append(TouchpointTotal(tenant, touchpoint, int(promoters), int(passives), int(detractors)))
        return totals

    async def insert_new_answers(
        self,
        answers: Mapping[AnswerKey, CountedAnswer],
        at: datetime,
        *,
        customers: Mapping[AnswerKey, str | None] | None = None,
    ) -> set[AnswerKey]:
        """Insert the answers scoring has not held yet, in one statement; return their keys.

        An answer inserted here is new for certain: a concurrent insert of the same answer makes this
        one wait and then skip it, so no answer is ever counted as new twice.
        """
        if not answers:
            return set()
        ordered = sorted(answers.items())
        parameters = {
            "tenant_ids": [key[0] for key, _ in ordered],
            "response_ids": [key[1] for key, _ in ordered],
            "touchpoints": [counted.answer.touchpoint for _, counted in ordered],
            "scores": [counted.answer.score for _, counted in ordered],
            "revisions": [counted.answer.revision for _, counted in ordered],
            "days": [counted.day for _, counted in ordered],
            "segments": [
                json.dumps([[segment.dimension, segment.value] for segment in counted.segments])
                for _, counted in ordered
            ],
            "spend": [json.dumps([list(each) for each in counted.spend]) for _, counted in ordered],
            # Whose answer it is, only so that an erasure finds it (README, "Privacy: erasure").
            "customer_ids": [(customers or {}).get(key) for key, _ in ordered],
            "at": at,
        }
        rows = await self.session.execute(_INSERT_ANSWERS, parameters)
        return {(row.tenant_id, row.response_id) for row in rows}

    async def erase_customer(self, tenant_id: uuid.UUID, customer_id: str) -> int:
        """The customer's answers lose the one thing that ties them to the customer, the id. Score,
        touchpoint, day, segments and spend stay, unlinked: every tally and cell keeps its count, and a
        revision still in flight when the erasure ran still leaves exactly the cells it was counted in
        (clearing the segments would strand it in the segment cells)."""
        result = await self.session.execute(
            update(ScoredAnswer)
            .where(ScoredAnswer.tenant_id == tenant_id, ScoredAnswer.customer_id == customer_id)
            .values(customer_id=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def lock_answers(self, keys: Iterable[AnswerKey]) -> dict[AnswerKey, CountedAnswer]:
        """The held versions of these answers, and where they were counted, locked until the
        transaction ends, in one query."""
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
                ScoredAnswer.responded_on,
                ScoredAnswer.segments,
                ScoredAnswer.spend,
            )
            .where(tuple_(ScoredAnswer.tenant_id, ScoredAnswer.response_id).in_(wanted))
            .order_by(ScoredAnswer.tenant_id, ScoredAnswer.response_id)
            .with_for_update()
        )
        return {
            (row.tenant_id, row.response_id): CountedAnswer(
                HeldAnswer(row.touchpoint, row.score, row.revision),
                row.responded_on,
                tuple(Segment(dimension, value) for dimension, value in row.segments),
                tuple((str(currency), int(amount)) for currency, amount in row.spend),
            )
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
                **dict(zip(SCORE_COLUMNS, item.bins.counts, strict=True)),
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
                **{name: getattr(TouchpointTally, name) + excluded[name] for name in SCORE_COLUMNS},
            },
        ).returning(
            TouchpointTally.tenant_id,
            TouchpointTally.touchpoint,
            TouchpointTally.promoters,
            TouchpointTally.passives,
            TouchpointTally.detractors,
            TouchpointTally.version,
            *(getattr(TouchpointTally, name) for name in SCORE_COLUMNS),
        )
        totals = []
        for row in await self.session.execute(statement):
            tally = Tally(row.promoters, row.passives, row.detractors)
            totals.append(
                TouchpointCounts(
                    row.tenant_id, row.touchpoint, tally, row.version, _distribution_of(row, tally)
                )
            )
        return totals

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

    async def change_cells(self, changes: Mapping[CellKey, CellChange], at: datetime) -> list[CellState]:
        """Apply a batch's signed changes to the cells in one statement; return their new states.

        In SQL, as the tallies are, so concurrent consumers lose nothing; in key order, so they
        lock the cells in the same order and cannot deadlock.
        """
        if not changes:
            return []
        rows = [(*_cell_key(key), *change.bins.counts, change.steps) for key, change in changes.items()]
        rows.sort(key=lambda row: row[:6])
        columns = {
            name: list(values) for name, values in zip(_CELL_COLUMNS, zip(*rows, strict=True), strict=True)
        }
        result = await self.session.execute(_CHANGE_CELLS, {**columns, "at": at})
        keys, scores = len(_CELL_KEY_COLUMNS), len(SCORE_COLUMNS)
        return [
            CellState(CellKey(*row[:keys]), Bins(tuple(row[keys : keys + scores])), row[keys + scores])
            for row in result
        ]

    async def change_spend(self, changes: Mapping[CellKey, Mapping[str, GroupSpend]], at: datetime) -> None:
        """Apply a batch's signed spend changes, per cell and currency, in one statement, in key
        order (after :meth:`change_cells` has locked those cells, so consumers take turns)."""
        rows = sorted(
            (*_cell_key(key), currency, change.promoters, change.passives, change.detractors)
            for key, spend in changes.items()
            for currency, change in spend.items()
        )
        if rows:
            await self.session.execute(_CHANGE_SPEND, {**_arrays(_SPEND_COLUMNS, rows), "at": at})

    async def spend_of_cells(self, keys: Iterable[CellKey]) -> dict[CellKey, dict[str, GroupSpend]]:
        """The spend per currency of these cells, as it stands in this transaction: one query."""
        wanted = sorted({_cell_key(key) for key in keys})
        if not wanted:
            return {}
        result = await self.session.execute(_SPEND_OF_CELLS, _arrays(_CELL_KEY_COLUMNS, wanted))
        found: dict[CellKey, dict[str, GroupSpend]] = {}
        width = len(_CELL_KEY_COLUMNS)
        for row in result:
            spend = found.setdefault(CellKey(*row[:width]), {})
            spend[row[width]] = GroupSpend(row[width + 1], row[width + 2], row[width + 3])
        return found

    async def declared_dimensions(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        """The attribute keys each of these tenants segments by, in the order declared: one query."""
        wanted = sorted(set(tenant_ids))
        if not wanted:
            return {}
        query = (
            select(SegmentDimension.tenant_id, SegmentDimension.dimension)
            .where(SegmentDimension.tenant_id.in_(wanted))
            .order_by(SegmentDimension.tenant_id, SegmentDimension.position)
        )
        declared: dict[uuid.UUID, list[str]] = {}
        for row in await self.session.execute(query):
            declared.setdefault(row.tenant_id, []).append(row.dimension)
        return declared

    async def declare_dimensions(self, tenant_id: uuid.UUID, dimensions: Sequence[str]) -> None:
        """Replace the tenant's declared dimensions. Values already seen stay known.

        Two replacements at once take turns (a lock on the tenant for the transaction), so the
        list is one or the other, never a mix or a duplicate key."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))"),
            {"lock": f"scoring.segment_dimensions:{tenant_id}"},
        )
        await self.session.execute(delete(SegmentDimension).where(SegmentDimension.tenant_id == tenant_id))
        if dimensions:
            rows = [
                {"tenant_id": tenant_id, "dimension": name, "position": position}
                for position, name in enumerate(dimensions)
            ]
            await self.session.execute(pg_insert(SegmentDimension).values(rows))

    async def known_values(
        self, dimensions: Iterable[tuple[uuid.UUID, str]]
    ) -> dict[tuple[uuid.UUID, str], set[str]]:
        """The values these tenant x dimensions hold already, in one query."""
        wanted = sorted(set(dimensions))
        if not wanted:
            return {}
        query = select(SegmentValue.tenant_id, SegmentValue.dimension, SegmentValue.value).where(
            tuple_(SegmentValue.tenant_id, SegmentValue.dimension).in_(wanted)
        )
        known: dict[tuple[uuid.UUID, str], set[str]] = {}
        for row in await self.session.execute(query):
            known.setdefault((row.tenant_id, row.dimension), set()).add(row.value)
        return known

    async def lock_dimensions(self, dimensions: Iterable[tuple[uuid.UUID, str]]) -> None:
        """Hold these tenant x dimensions until the transaction ends (one statement), so that two
        consumers admitting values to one of them take turns. In one order, so they cannot deadlock."""
        keys = sorted(f"scoring.segment_values:{tenant}:{dimension}" for tenant, dimension in set(dimensions))
        if keys:
            await self.session.execute(_LOCK_DIMENSIONS, {"keys": keys})

    async def add_values(self, values: Iterable[tuple[uuid.UUID, Segment]], at: datetime) -> None:
        """Record values first seen, in one statement (a concurrent insert of one wins, harmlessly)."""
        rows = [
            {"tenant_id": tenant, "dimension": segment.dimension, "value": segment.value, "first_seen_at": at}
            for tenant, segment in sorted(set(values))
        ]
        if rows:
            statement = pg_insert(SegmentValue).values(rows).on_conflict_do_nothing()
            await self.session.execute(statement)

    async def cell_tallies(
        self, tenant_id: uuid.UUID, where: CellQuery, touchpoint: str | None = None
    ) -> list[TouchpointCounts]:
        """Each touchpoint's counts summed over the cells of one segment and bucket, from ``since``
        (inclusive) to ``until`` (exclusive) when given."""
        sums = [func.sum(getattr(Cell, name)).label(name) for name in SCORE_COLUMNS]
        query = select(Cell.touchpoint, *sums).where(
            Cell.tenant_id == tenant_id,
            Cell.dimension == where.dimension,
            Cell.value == where.value,
            Cell.bucket == where.bucket,
        )
        if where.since is not None:
            query = query.where(Cell.start >= where.since)
        if where.until is not None:
            query = query.where(Cell.start < where.until)
        if touchpoint is not None:
            query = query.where(Cell.touchpoint == touchpoint)
        rows = await self.session.execute(query.group_by(Cell.touchpoint).order_by(Cell.touchpoint))
        result = []
        for row in rows:
            bins = _bins_of(row)
            result.append(TouchpointCounts(tenant_id, row.touchpoint, bins.tally(), distribution=bins.counts))
        return result
