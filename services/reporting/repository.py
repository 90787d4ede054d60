"""Every query reporting makes, as one object over a unit of work's session. Writes take a whole
batch of rows (the models): one statement per table per batch."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import operator
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Label,
    Select,
    SQLColumnExpression,
    Subquery,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from libs.common.privacy import SECTION_LIMIT, KeysetSection, Section, customer_pages, json_value
from libs.common.retention import retention_update
from services.reporting.domain.case_days import (
    CONTACT,
    EXACT_PERCENTILE_CASES,
    RATIO,
    RESOLUTION,
    SLA_MET,
    ZERO_BUCKET,
    CaseRollupChanges,
    CaseSpans,
    CaseVersion,
    histogram_percentile,
    plan_case_spans,
)
from services.reporting.domain.cases import FIRST_KNOWN, LATEST_KNOWN, PROGRESS, CaseFacts
from services.reporting.domain.followups import (
    FAST_CONTACT_SECONDS,
    LATER,
    NEVER_CONTACTED,
    WITHIN_24_H,
    BreakdownCount,
    BreakdownDimension,
    CaseTotals,
    RecoveryCount,
    RecoveryDimension,
)
from services.reporting.domain.funnel_days import (
    FAILED_BY_REASON,
    MACHINE_OPENED,
    OPENED,
    Edge,
    FunnelCounts,
    InvitationKey,
    RollupKey,
    WholeDays,
    plan_funnel_days,
)
from services.reporting.domain.insight import SegmentSort, Span
from services.reporting.domain.repurchase import RepurchaseTally, ScoreCount, check_window
from services.reporting.domain.revenue import ChurnProbability, Spend
from services.reporting.domain.rollups import AnswerVersion, DayKey, Tally, day_of, read_plan
from services.reporting.domain.verbatims import MAX_CATEGORIES, Position
from services.reporting.models import (
    CAME_BACK_COLUMNS,
    SCORE_COLUMNS,
    AnswerDay,
    Base,
    CaseDay,
    CaseDurationDay,
    CaseDurationMonth,
    CaseMonth,
    CaseRecoveryDay,
    CaseRecoveryMonth,
    FollowupCase,
    FunnelDay,
    InvitationFailure,
    InvitationSent,
    InvitationStep,
    NpsCell,
    RecordedPurchase,
    ReportSettings,
    RepurchaseDay,
    Response,
)

CaseKey = tuple[uuid.UUID, uuid.UUID]
FactT = TypeVar("FactT", InvitationSent, InvitationStep, InvitationFailure)
#: (tenant, response id).
AnswerKey = tuple[uuid.UUID, uuid.UUID]


#: What a newer revision of an answer replaces; who answered which invitation when stays.
_REVISED_COLUMNS = (
    "touchpoint",
    "score",
    "revision",
    "comment",
    "recommended",
    "csat",
    "effort",
    "updated_at",
)
#: The survey context's snapshot: a revision carries it again, so where one arrives without it
#: (or an older row lacks it) the known value stays.
_SNAPSHOT_COLUMNS = ("customer_id", "locale", "account_id", "attributes", "spend_12m")


#: What the rollup counts of a stored answer (:class:`rollups.AnswerVersion`'s fields, in order).
_ROLLED_UP = (
    Response.touchpoint,
    Response.responded_at,
    Response.score,
    Response.revision,
    Response.recommended,
    Response.csat,
    Response.effort,
    Response.repurchased_at,
)
#: The rollup's counts (:class:`rollups.Tally`'s fields, in order).
_TALLY_COLUMNS = tuple(field.name for field in dataclasses.fields(Tally))


def _version(row: Sequence[Any], offset: int) -> AnswerVersion:
    return AnswerVersion(*row[offset : offset + len(_ROLLED_UP)])


def _day_counts() -> list[Label[int]]:
    return [cast(func.sum(getattr(AnswerDay, name)), BigInteger).label(name) for name in _TALLY_COLUMNS]


def _raw_counts() -> list[Label[int]]:
    """An answer's :class:`rollups.Tally` summed over raw rows, as the rollup's columns."""
    counts = (
        func.count(),
        func.count().filter(Response.recommended.is_(True)),
        func.count().filter(Response.recommended.is_(False)),
        func.coalesce(func.sum(Response.csat), 0),
        func.count(Response.csat),
        func.coalesce(func.sum(Response.effort), 0),
        func.count(Response.effort),
    )
    return [cast(count, BigInteger).label(name) for count, name in zip(counts, _TALLY_COLUMNS, strict=True)]


def _days_selected(
    tenant_id: uuid.UUID,
    touchpoint: str | None,
    first_day: date | None,
    stop_day: date | None,
    model: type[AnswerDay] | type[CaseDay] | type[CaseRecoveryDay] | type[CaseDurationDay] = AnswerDay,
) -> list[ColumnElement[bool]]:
    """A daily rollup's rows of a tenant (and touchpoint) from ``first_day`` to ``stop_day``."""
    conditions = [model.tenant_id == tenant_id]
    if touchpoint is not None:
        conditions.append(model.touchpoint == touchpoint)
    if first_day is not None:
        conditions.append(model.day >= first_day)
    if stop_day is not None:
        conditions.append(model.day < stop_day)
    return conditions


def _columns(row: Base) -> dict[str, object]:
    """A row not added to the session, as the column values of an insert."""
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _progress(status: SQLColumnExpression[str]) -> ColumnElement[int]:
    return case(*((status == name, rank) for name, rank in PROGRESS.items()), else_=-1)


@dataclass(frozen=True)
class ReportFilter:
    tenant_id: uuid.UUID
    touchpoint: str | None = None
    since: datetime | None = None
    #: Exclusive: what happened before then.
    until: datetime | None = None


@dataclass(frozen=True)
class CellFilter:
    """The cells of a tenant, of one touchpoint or all, for everybody (dimension ``''``), one
    segment, or (value None) each value of one dimension."""

    tenant_id: uuid.UUID
    touchpoint: str | None = None
    dimension: str = ""
    value: str | None = ""


@dataclass(frozen=True)
class SegmentRow:
    touchpoint: str
    value: str
    distribution: list[int]
    responses: int
    #: As the database computed it for the order: the next page's cursor carries it exactly.
    nps: float | None


@dataclass(frozen=True)
class Period:
    """What an export or the feed selects: a tenant's, from ``since`` (inclusive) to ``until``
    (exclusive), optionally of one touchpoint."""

    tenant_id: uuid.UUID
    since: datetime
    until: datetime
    touchpoint: str | None = None


@dataclass(frozen=True)
class Segment:
    dimension: str
    value: str


@dataclass(frozen=True)
class VerbatimFilter:
    period: Period
    segment: Segment | None = None
    #: The scores of the NPS group asked for (see ``domain.verbatims.scores_in``); None for all.
    scores: Sequence[int] | None = None
    #: A case-insensitive substring of the comment.
    q: str | None = None
    #: Where the previous page ended.
    after: Position | None = None


@dataclass(frozen=True)
class Repurchased:
    """An answer that took a (new, earlier) first repurchase: as the rollup counted it before and after."""

    tenant_id: uuid.UUID
    before: AnswerVersion
    after: AnswerVersion


@dataclass(frozen=True)
class CaseLink:
    case_id: uuid.UUID
    status: str


class AnswersRaced(OperationalError):
    """Another transaction stored answers of this batch between its locking read and its upsert:
    the batch's rollup deltas would be wrong, so the consumer retries it (as after a deadlock)."""

    def __init__(self, answers: int) -> None:
        super().__init__(
            "INSERT INTO reporting.responses", None, RuntimeError(f"{answers} answers stored concurrently")
        )


class CasesRaced(OperationalError):
    """Another transaction stored a case of this batch between its locking read and its upsert:
    the rollups' deltas would be wrong, so the consumer retries the batch."""

    def __init__(self, cases: int) -> None:
        super().__init__(
            "INSERT INTO reporting.cases", None, RuntimeError(f"{cases} cases stored concurrently")
        )


#: What the case rollups count of a stored case (:class:`case_days.CaseVersion`'s fields, in order).
_CASE_ROLLED_UP = tuple(getattr(FollowupCase, field.name) for field in dataclasses.fields(CaseVersion))


class ReportingRepository:
    """Reporting's queries over one transaction's session (``uow.repository``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def erase_customer(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, int]:
        """A customer's answers stay (every count, rollup and rate read from them is unchanged) and
        lose what they wrote and who they are: the comment (so the verbatims feed no longer shows
        it), the attributes and the customer id. The purchases told of them are removed: a
        repurchase already marked on an answer, and the rollups, keep it."""
        answers = await self.session.execute(
            update(Response)
            .where(Response.tenant_id == tenant_id, Response.customer_id == customer_id)
            .values(comment=None, attributes=None, customer_id=None)
        )
        bought = await self.session.execute(
            delete(RecordedPurchase).where(
                RecordedPurchase.tenant_id == tenant_id, RecordedPurchase.customer_id == customer_id
            )
        )
        return {
            "responses": int(getattr(answers, "rowcount", 0) or 0),
            "purchases": int(getattr(bought, "rowcount", 0) or 0),
        }

    # --- Privacy: retention ---------------------------------------------------------------------

    async def apply_retention(self, now: datetime, limit: int) -> int:
        """One batch past each tenant's comments retention: the comment removed from the read
        model's answer. Its score, and every rollup it was counted in, stay as they are."""
        result = await self.session.execute(_RETAIN_COMMENTS, {"now": now, "limit": limit})
        return int(getattr(result, "rowcount", 0) or 0)

    # --- Privacy: a customer's data (export) ----------------------------------------------------

    def customer_sections(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, KeysetSection]:
        """The read model's rows of one customer of one tenant, by kind, each read in pages down an
        index: the answers, the purchases it was told of, and the cases of those answers. The
        rollups hold no customer; the funnel's facts are kept by invitation (:meth:`funnel_facts`)."""
        answered = select(Response.response_id).where(
            Response.tenant_id == tenant_id, Response.customer_id == customer_id
        )
        return {
            "responses": KeysetSection(
                select(Response.__table__).where(
                    Response.tenant_id == tenant_id, Response.customer_id == customer_id
                ),
                (Response.responded_at, Response.response_id),
            ),
            "purchases": KeysetSection(
                select(RecordedPurchase.__table__).where(
                    RecordedPurchase.tenant_id == tenant_id, RecordedPurchase.customer_id == customer_id
                ),
                (RecordedPurchase.occurred_at, RecordedPurchase.order_id),
            ),
            "cases": KeysetSection(
                select(FollowupCase.__table__).where(
                    FollowupCase.tenant_id == tenant_id, FollowupCase.response_id.in_(answered)
                ),
                (FollowupCase.case_id,),
            ),
        }

    async def customer_data(
        self,
        tenant_id: uuid.UUID,
        customer_id: str,
        *,
        section: str | None = None,
        after: str | None = None,
        limit: int = SECTION_LIMIT,
    ) -> dict[str, Section]:
        """A page of reporting's sections (:meth:`customer_sections`), as every ``/data`` gives."""
        return await customer_pages(
            self.session,
            self.customer_sections(tenant_id, customer_id),
            section=section,
            after=after,
            limit=limit,
        )

    async def funnel_facts(self, tenant_id: uuid.UUID, invitation_ids: Sequence[uuid.UUID]) -> Section:
        """The funnel's facts of these invitations of this tenant, each a step it reached: ``sent``,
        the steps after it (opened, clicked, reminded, bounced, unsubscribed, expired) and
        ``failed`` with its reason. Reporting keeps them by invitation, not by customer: the export
        names the customer's invitations (the survey's part), a page at a time, so this is one page.
        Each lookup is one of the tables' primary keys."""
        wanted = sorted(set(invitation_ids))
        sent = select(
            InvitationSent.invitation_id,
            InvitationSent.touchpoint,
            literal("sent").label("step"),
            InvitationSent.sent_at.label("at"),
            null().label("reason"),
        ).where(InvitationSent.tenant_id == tenant_id, InvitationSent.invitation_id.in_(wanted))
        steps = select(
            InvitationStep.invitation_id,
            InvitationStep.touchpoint,
            InvitationStep.step,
            InvitationStep.at,
            null(),
        ).where(InvitationStep.tenant_id == tenant_id, InvitationStep.invitation_id.in_(wanted))
        failed = select(
            InvitationFailure.invitation_id,
            InvitationFailure.touchpoint,
            literal("failed"),
            InvitationFailure.at,
            InvitationFailure.reason,
        ).where(InvitationFailure.tenant_id == tenant_id, InvitationFailure.invitation_id.in_(wanted))
        facts = union_all(sent, steps, failed).subquery()
        rows = await self.session.execute(
            select(facts).order_by(facts.c.at.desc(), facts.c.invitation_id, facts.c.step)
        )
        return Section([{str(k): json_value(v) for k, v in row.items()} for row in rows.mappings()])

    async def read_one_snapshot(self) -> None:
        """The rest of this transaction reads one consistent state (it must be its first statement)."""
        await self.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))

    async def record_invitations(self, invitations: Sequence[InvitationSent]) -> list[InvitationSent]:
        """Returns the invitations this added: the rollup counts those, never a repeat."""
        return await self._add_facts(InvitationSent, invitations)

    async def record_steps(self, steps: Sequence[InvitationStep]) -> list[InvitationStep]:
        return await self._add_facts(InvitationStep, steps)

    async def record_failures(self, failures: Sequence[InvitationFailure]) -> list[InvitationFailure]:
        return await self._add_facts(InvitationFailure, failures)

    async def _add_facts(self, model: type[FactT], facts: Sequence[FactT]) -> list[FactT]:
        """Facts never change: one insert for the batch, a repeat of a stored one is ignored. In key
        order, so that two batches adding the same facts cannot deadlock; returns the rows added."""
        if not facts:
            return []
        keys = [column.key for column in model.__table__.primary_key]
        ordered = sorted(facts, key=lambda fact: tuple(str(getattr(fact, key)) for key in keys))
        added = await self.session.scalars(
            pg_insert(model)
            .values([_columns(fact) for fact in ordered])
            .on_conflict_do_nothing()
            .returning(model)
        )
        return list(added.all())

    async def opens_of(
        self, invitations: Collection[InvitationKey]
    ) -> dict[InvitationKey, dict[str, tuple[str, datetime]]]:
        """Per invitation, its stored opens (person's and machine's) as (touchpoint, at)."""
        if not invitations:
            return {}
        rows = await self.session.execute(
            select(
                InvitationStep.tenant_id,
                InvitationStep.invitation_id,
                InvitationStep.step,
                InvitationStep.touchpoint,
                InvitationStep.at,
            ).where(
                tuple_(InvitationStep.tenant_id, InvitationStep.invitation_id).in_(sorted(invitations)),
                InvitationStep.step.in_([OPENED, MACHINE_OPENED]),
            )
        )
        opens: dict[InvitationKey, dict[str, tuple[str, datetime]]] = {}
        for tenant_id, invitation_id, step, touchpoint, at in rows:
            opens.setdefault((tenant_id, invitation_id), {})[step] = (touchpoint, at)
        return opens

    async def add_to_funnel_days(self, changes: Mapping[RollupKey, int]) -> None:
        """Add each change to its rollup row, in one statement, in key order so that concurrent
        batches cannot deadlock."""
        if not changes:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "touchpoint": touchpoint,
                "day": day,
                "step": step,
                "reason": reason,
                "invitations": delta,
            }
            for (tenant_id, touchpoint, day, step, reason), delta in sorted(changes.items())
        ]
        await _add_to_rollup(self.session, FunnelDay, rows, ("invitations",))

    async def funnel_by_touchpoint(self, where: ReportFilter) -> dict[str, FunnelCounts]:
        """Per touchpoint (in name order, only those with something to count), the funnel of the
        filter's range: its whole UTC days from the rollup, the partial days at its ends from the
        facts (see :func:`plan_funnel_days`)."""
        plan = plan_funnel_days(where.since, where.until)
        funnels: dict[str, FunnelCounts] = {}
        if plan.days is not None:
            for touchpoint, step, reason, invitations in await self._funnel_days(where, plan.days):
                funnel = funnels.setdefault(touchpoint, FunnelCounts())
                if step == FAILED_BY_REASON:
                    funnel.add_failures(reason, invitations)
                else:
                    funnel.add_step(step, invitations)
        for edge in plan.edges:
            part = ReportFilter(where.tenant_id, where.touchpoint, edge.since, edge.until)
            for touchpoint, sent in (await self.invitations_by_touchpoint(part)).items():
                funnels.setdefault(touchpoint, FunnelCounts()).add_step("sent", sent)
            for touchpoint, step, invitations in await self.steps_by_touchpoint(part):
                funnels.setdefault(touchpoint, FunnelCounts()).add_step(step, invitations)
            for touchpoint, reason, invitations in await self.failures_by_touchpoint(part):
                funnels.setdefault(touchpoint, FunnelCounts()).add_failures(reason, invitations)
        counted = {name: funnel.without_zeros() for name, funnel in sorted(funnels.items())}
        return {name: funnel for name, funnel in counted.items() if not funnel.empty}

    async def _funnel_days(self, where: ReportFilter, days: WholeDays) -> list[tuple[str, str, str, int]]:
        query = select(
            FunnelDay.touchpoint, FunnelDay.step, FunnelDay.reason, func.sum(FunnelDay.invitations)
        ).where(FunnelDay.tenant_id == where.tenant_id)
        if where.touchpoint is not None:
            query = query.where(FunnelDay.touchpoint == where.touchpoint)
        if days.first is not None:
            query = query.where(FunnelDay.day >= days.first)
        if days.stop is not None:
            query = query.where(FunnelDay.day < days.stop)
        rows = await self.session.execute(
            query.group_by(FunnelDay.touchpoint, FunnelDay.step, FunnelDay.reason)
        )
        return [(row[0], row[1], row[2], int(row[3])) for row in rows]

    async def failures_by_touchpoint(self, where: ReportFilter) -> list[tuple[str, str, int]]:
        """(touchpoint, reason, invitations given up), counted from when they were given up."""
        query = select(InvitationFailure.touchpoint, InvitationFailure.reason, func.count()).where(
            InvitationFailure.tenant_id == where.tenant_id
        )
        if where.touchpoint is not None:
            query = query.where(InvitationFailure.touchpoint == where.touchpoint)
        if where.since is not None:
            query = query.where(InvitationFailure.at >= where.since)
        if where.until is not None:
            query = query.where(InvitationFailure.at < where.until)
        rows = await self.session.execute(
            query.group_by(InvitationFailure.touchpoint, InvitationFailure.reason)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def held_answers(self, keys: Collection[AnswerKey]) -> dict[AnswerKey, AnswerVersion]:
        """The stored versions of these answers, as the rollup counts them, locked (``FOR UPDATE``)
        until the transaction ends: one statement, in key order, so two batches cannot deadlock."""
        if not keys:
            return {}
        key = tuple_(Response.tenant_id, Response.response_id)
        rows = await self.session.execute(
            select(Response.tenant_id, Response.response_id, *_ROLLED_UP)
            .where(key.in_(sorted(keys)))
            .order_by(Response.tenant_id, Response.response_id)
            .with_for_update()
        )
        return {(row[0], row[1]): _version(row, 2) for row in rows}

    async def record_responses(
        self, answers: Sequence[Response], held: Collection[AnswerKey]
    ) -> dict[AnswerKey, AnswerVersion]:
        """Keep each answer in its highest revision, in one statement: a version not newer than the
        stored one leaves the row alone. The caller passes one row per answer, and ``held``: the
        answers :meth:`held_answers` found (and locked). Returns the answers this stored (new, or
        newer than held), as stored now.

        Only held answers are updated: an answer that another transaction stored after the
        locking read was not counted against what it held, so the batch is refused with
        :class:`AnswersRaced` (a transient error the consumer retries) rather than miscounted."""
        if not answers:
            return {}
        ordered = sorted(answers, key=lambda answer: (answer.tenant_id, answer.response_id))
        insert = pg_insert(Response).values([_columns(answer) for answer in ordered])
        key = tuple_(Response.tenant_id, Response.response_id)
        stored = await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=[Response.tenant_id, Response.response_id],
                set_={
                    **{name: insert.excluded[name] for name in _REVISED_COLUMNS},
                    **{
                        name: func.coalesce(insert.excluded[name], getattr(Response, name))
                        for name in _SNAPSHOT_COLUMNS
                    },
                },
                where=and_(Response.revision < insert.excluded.revision, key.in_(sorted(held))),
            ).returning(Response.tenant_id, Response.response_id, *_ROLLED_UP)
        )
        changed = {(row[0], row[1]): _version(row, 2) for row in stored}
        raced = [
            (answer.tenant_id, answer.response_id)
            for answer in ordered
            if (answer.tenant_id, answer.response_id) not in held
            and (answer.tenant_id, answer.response_id) not in changed
        ]
        if raced:
            raise AnswersRaced(len(raced))
        return changed

    async def add_to_answer_days(self, changes: Mapping[tuple[uuid.UUID, DayKey], Tally]) -> None:
        """Add each change to its rollup row (created at zero), in one statement, in key order so
        that concurrent batches cannot deadlock."""
        if not changes:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "touchpoint": touchpoint,
                "day": day,
                "score": score,
                **dataclasses.asdict(change),
            }
            for (tenant_id, (touchpoint, day, score)), change in sorted(changes.items())
        ]
        await _add_to_rollup(self.session, AnswerDay, rows, _TALLY_COLUMNS)

    async def answer_tallies(self, where: ReportFilter) -> dict[str, dict[int, Tally]]:
        """Per touchpoint and score, what the filter's answers add up to, in one statement: the
        rollup's whole UTC days, and the raw answers of a partial first or last day only (see
        :func:`rollups.read_plan`)."""
        plan = read_plan(where.since, where.until)
        parts: list[Select[*tuple[Any, ...]]] = []
        if plan.whole_days:
            days = select(AnswerDay.touchpoint, AnswerDay.score, *_day_counts()).where(
                *_days_selected(where.tenant_id, where.touchpoint, plan.first_day, plan.stop_day)
            )
            parts.append(days.group_by(AnswerDay.touchpoint, AnswerDay.score))
        for edge in plan.edges:
            raw = select(Response.touchpoint, Response.score, *_raw_counts()).where(
                Response.tenant_id == where.tenant_id,
                Response.responded_at >= edge.since,
                Response.responded_at < edge.until,
            )
            if where.touchpoint is not None:
                raw = raw.where(Response.touchpoint == where.touchpoint)
            parts.append(raw.group_by(Response.touchpoint, Response.score))
        if not parts:
            return {}
        found: dict[str, dict[int, Tally]] = {}
        for row in await self.session.execute(parts[0] if len(parts) == 1 else union_all(*parts)):
            by_score = found.setdefault(row[0], {})
            by_score[row[1]] = by_score.get(row[1], Tally()) + Tally(*(int(count) for count in row[2:]))
        return found

    async def answer_days_by_score(
        self, tenant_id: uuid.UUID, touchpoint: str | None, first_day: date, stop_day: date
    ) -> dict[int, Tally]:
        """Per score, what the rollup's days from ``first_day`` to ``stop_day`` (exclusive) add up
        to, over one touchpoint or all."""
        query = select(AnswerDay.score, *_day_counts()).where(
            *_days_selected(tenant_id, touchpoint, first_day, stop_day)
        )
        rows = await self.session.execute(query.group_by(AnswerDay.score))
        return {row[0]: Tally(*(int(count) for count in row[1:])) for row in rows}

    async def record_cells(self, cells: Sequence[NpsCell]) -> list[NpsCell]:
        """Keep each cell at its highest version, in one statement; returns the cells this changed
        (new, or a higher version than stored), as stored now. One row per cell, as ON CONFLICT
        DO UPDATE requires."""
        if not cells:
            return []
        # In key order, so that two batches upserting the same cells cannot deadlock.
        ordered = sorted(cells, key=_cell_key)
        insert = pg_insert(NpsCell).values([_columns(cell) for cell in ordered])
        changed = await self.session.scalars(
            insert.on_conflict_do_update(
                index_elements=list(NpsCell.__table__.primary_key),
                set_={name: insert.excluded[name] for name in (*SCORE_COLUMNS, "version", "as_of", "spend")},
                where=NpsCell.version < insert.excluded.version,
            ).returning(NpsCell)
        )
        return list(changed.all())

    async def notify(self, channel: str, payloads: Sequence[str]) -> None:
        """``pg_notify`` each payload on ``channel``, in one statement: Postgres delivers them to
        every listener when (and only if) this transaction commits."""
        if payloads:
            statement = text("SELECT pg_notify(:channel, payload) FROM unnest(:payloads) AS payload")
            await self.session.execute(
                statement.bindparams(bindparam("payloads", type_=ARRAY(Text))),
                {"channel": channel, "payloads": list(payloads)},
            )

    async def distribution_over(self, where: CellFilter, spans: Sequence[Span]) -> list[int]:
        """Answers per score 0-10 over the cells of the spans, summed in one row."""
        row = (await self.session.execute(select(*_summed()).where(*_cells_selected(where, spans)))).one()
        return _distribution(row)

    async def distributions_by_start(self, where: CellFilter, span: Span) -> dict[date, list[int]]:
        """Per cell start in the span, answers per score summed over touchpoints: the trend."""
        query = (
            select(NpsCell.start, *_summed()).where(*_cells_selected(where, [span])).group_by(NpsCell.start)
        )
        return {row[0]: _distribution(row, 1) for row in await self.session.execute(query)}

    async def segment_page(
        self,
        where: CellFilter,
        spans: Sequence[Span],
        sort: SegmentSort,
        after: Sequence[object] | None,
        limit: int,
    ) -> list[SegmentRow]:
        """One page of a dimension's values (per touchpoint) over the spans, in ``sort``'s order
        after the cursor's position (see :func:`insight.sort_position`), in one query."""
        if not spans:
            return []
        cells = _span_cells(where, spans)
        groups = (
            select(
                cells.c.touchpoint,
                cells.c.value,
                *(cast(func.sum(cells.c[name]), BigInteger).label(name) for name in SCORE_COLUMNS),
            )
            .group_by(cells.c.touchpoint, cells.c.value)
            .subquery()
        )
        columns = [groups.c[name] for name in SCORE_COLUMNS]
        responses = functools.reduce(operator.add, columns)
        promoters, detractors = columns[9] + columns[10], functools.reduce(operator.add, columns[:7])
        nps = case(
            (responses > 0, cast(100 * (promoters - detractors), Float) / cast(responses, Float)), else_=None
        )
        keys = _segment_keys(
            sort, groups.c.touchpoint.collate("C"), groups.c.value.collate("C"), responses, nps
        )
        query = select(groups.c.touchpoint, groups.c.value, *columns, responses, nps)
        if after is not None:
            query = query.where(_after(keys, after))
        query = query.order_by(*(key.desc() if descending else key.asc() for key, descending in keys))
        return [
            SegmentRow(row[0], row[1], _distribution(row, 2), int(row[13]), row[14])
            for row in await self.session.execute(query.limit(limit))
        ]

    async def weekly_by_segment(
        self, where: CellFilter, segments: Sequence[tuple[str, str]], weeks: Span
    ) -> dict[tuple[str, str], dict[date, list[int]]]:
        """The week cells of the given (touchpoint, value) pairs: the sparklines of a page. One
        dimension's cells of one bucket are one per (touchpoint, value, start): nothing to sum.

        The pairs are two arrays joined to the cells (a primary-key range per pair): a prepared
        statement's generic plan for a list of 100 parameters read every week cell of the
        dimension instead, many times slower."""
        if not segments:
            return {}
        pairs = (
            func.unnest(
                literal([touchpoint for touchpoint, _ in segments], ARRAY(Text)),
                literal([value for _, value in segments], ARRAY(Text)),
            )
            .table_valued(column("touchpoint", Text), column("value", Text))
            .render_derived("pairs")
        )
        query = (
            select(
                NpsCell.touchpoint,
                NpsCell.value,
                NpsCell.start,
                *(getattr(NpsCell, n) for n in SCORE_COLUMNS),
            )
            .select_from(pairs)
            .join(NpsCell, and_(NpsCell.touchpoint == pairs.c.touchpoint, NpsCell.value == pairs.c.value))
            .where(*_cells_selected(where, [weeks]))
        )
        found: dict[tuple[str, str], dict[date, list[int]]] = {}
        for row in await self.session.execute(query):
            found.setdefault((row[0], row[1]), {})[row[2]] = _distribution(row, 3)
        return found

    async def spend_over(
        self, where: CellFilter, spans: Sequence[Span], by: Literal["all", "touchpoint", "value"]
    ) -> list[tuple[str, Spend]]:
        """The detractors' and passives' spend per currency over the cells of the spans, summed
        per touchpoint, per segment value, or for ``all`` (group ``''``), in one query: each cell's
        spend is a small JSON array (at most 20 currencies), unnested beside the cell."""
        item = (
            func.jsonb_array_elements(NpsCell.spend)
            .table_valued(column("item", JSONB))
            .render_derived("spent")
        )
        currency = item.c.item["currency"].astext
        group = literal("") if by == "all" else NpsCell.touchpoint if by == "touchpoint" else NpsCell.value
        query = (
            select(
                group.label("grouped"),
                currency.label("currency"),
                cast(func.sum(cast(item.c.item["detractors"].astext, BigInteger)), BigInteger),
                cast(func.sum(cast(item.c.item["passives"].astext, BigInteger)), BigInteger),
            )
            .select_from(NpsCell)
            .join(item, true())
            .where(*_cells_selected(where, spans))
            .group_by(literal_column("grouped"), literal_column("currency"))
        )
        return [
            (row[0], Spend(row[1], int(row[2] or 0), int(row[3] or 0)))
            for row in await self.session.execute(query)
        ]

    async def churn_probability(self, tenant_id: uuid.UUID) -> tuple[ChurnProbability, datetime | None]:
        """The tenant's churn probabilities and when they were set; the defaults when never set."""
        row = await self.session.get(ReportSettings, tenant_id)
        if row is None:
            return ChurnProbability(), None
        return ChurnProbability(row.detractor_churn, row.passive_churn), row.updated_at

    async def set_churn_probability(
        self, tenant_id: uuid.UUID, probability: ChurnProbability, at: datetime
    ) -> None:
        values = {
            "detractor_churn": probability.detractor,
            "passive_churn": probability.passive,
            "updated_at": at,
        }
        insert = pg_insert(ReportSettings).values(tenant_id=tenant_id, **values)
        await self.session.execute(
            insert.on_conflict_do_update(index_elements=[ReportSettings.tenant_id], set_=values)
        )

    async def held_cases(self, keys: Collection[CaseKey]) -> dict[CaseKey, CaseVersion]:
        """The stored versions of these cases, as the rollups count them, locked (``FOR UPDATE``)
        until the transaction ends: one statement, in key order, so two batches cannot deadlock."""
        if not keys:
            return {}
        rows = await self.session.execute(
            select(FollowupCase.tenant_id, FollowupCase.case_id, *_CASE_ROLLED_UP)
            .where(tuple_(FollowupCase.tenant_id, FollowupCase.case_id).in_(sorted(keys)))
            .order_by(FollowupCase.tenant_id, FollowupCase.case_id)
            .with_for_update()
        )
        return {(row[0], row[1]): CaseVersion(*row[2:]) for row in rows}

    async def merge_cases(
        self, cases: Mapping[CaseKey, CaseFacts], held: Collection[CaseKey]
    ) -> dict[CaseKey, CaseVersion]:
        """Upsert cases by the rule of :func:`services.reporting.domain.cases.merge`, in SQL, so that
        facts from earlier batches and from this one combine the same way whatever their order.
        Returns every case as stored now.

        The caller merges the batch first: one row per case, as ON CONFLICT DO UPDATE requires; and
        passes ``held``, the cases :meth:`held_cases` found (and locked). A case neither held nor
        new was stored by another transaction after the locking read: the rollups would miscount
        it, so the batch is refused with :class:`CasesRaced` (transient: the consumer retries).
        """
        if not cases:
            return {}
        rows = [
            {"tenant_id": tenant_id, "case_id": case_id, **dataclasses.asdict(facts)}
            for (tenant_id, case_id), facts in sorted(cases.items())
        ]
        insert = pg_insert(FollowupCase).values(rows)
        arriving = insert.excluded
        newer = tuple_(arriving.updated_at, _progress(arriving.status), arriving.breached) > tuple_(
            FollowupCase.updated_at, _progress(FollowupCase.status), FollowupCase.breached
        )
        first_known = {
            name: func.coalesce(getattr(FollowupCase, name), arriving[name]) for name in FIRST_KNOWN
        }
        # Each field from the newer of the two where it has one, else from the other.
        latest_known = {
            name: case(
                (newer, func.coalesce(arriving[name], getattr(FollowupCase, name))),
                else_=func.coalesce(getattr(FollowupCase, name), arriving[name]),
            )
            for name in LATEST_KNOWN
        }
        stored = await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=[FollowupCase.tenant_id, FollowupCase.case_id],
                set_={
                    "status": case((newer, arriving.status), else_=FollowupCase.status),
                    "breached": case((newer, arriving.breached), else_=FollowupCase.breached),
                    "updated_at": case((newer, arriving.updated_at), else_=FollowupCase.updated_at),
                    **first_known,
                    **latest_known,
                },
            ).returning(
                FollowupCase.tenant_id,
                FollowupCase.case_id,
                literal_column("xmax = 0").label("inserted"),
                *_CASE_ROLLED_UP,
            )
        )
        versions: dict[CaseKey, CaseVersion] = {}
        raced = 0
        for row in stored:
            key = (row[0], row[1])
            raced += int(not row[2] and key not in held)
            versions[key] = CaseVersion(*row[3:])
        if raced:
            raise CasesRaced(raced)
        return versions

    async def add_to_case_rollups(self, changes: CaseRollupChanges) -> None:
        """Add each change to its row of the case rollups (created at zero): one statement per
        table, in key order so that concurrent batches cannot deadlock."""
        rollups: tuple[tuple[CaseRollup, Mapping[tuple[uuid.UUID, tuple[Any, ...]], int]], ...] = (
            (CaseDay, changes.states),
            (CaseMonth, changes.state_months()),
            (CaseRecoveryDay, changes.recoveries),
            (CaseRecoveryMonth, changes.recovery_months()),
            (CaseDurationDay, changes.durations),
            (CaseDurationMonth, changes.duration_months()),
        )
        for model, counts in rollups:
            if not counts:
                continue
            keys = _CASE_ROLLUP_KEYS.get(model) or [column.key for column in model.__table__.primary_key]
            rows = [
                dict(zip(keys, (tenant_id, *key), strict=True)) | {"cases": n}
                for (tenant_id, key), n in sorted(counts.items())
            ]
            insert = pg_insert(model).values(rows)
            await self.session.execute(
                insert.on_conflict_do_update(
                    index_elements=keys, set_={"cases": model.cases + insert.excluded.cases}
                )
            )

    async def invitations_by_touchpoint(self, where: ReportFilter) -> dict[str, int]:
        query = select(InvitationSent.touchpoint, func.count()).where(
            InvitationSent.tenant_id == where.tenant_id
        )
        if where.touchpoint is not None:
            query = query.where(InvitationSent.touchpoint == where.touchpoint)
        if where.since is not None:
            query = query.where(InvitationSent.sent_at >= where.since)
        if where.until is not None:
            query = query.where(InvitationSent.sent_at < where.until)
        rows = await self.session.execute(query.group_by(InvitationSent.touchpoint))
        return {row[0]: row[1] for row in rows}

    async def cases_by_state(self, where: ReportFilter) -> list[tuple[str | None, str, bool, int]]:
        """(touchpoint or None while unknown, status, breached, number of cases): the rollup's whole
        UTC days and the cases of a partial first or last day, in one statement."""
        plan = plan_case_spans(where.since, where.until)
        parts: list[Select[*tuple[Any, ...]]] = [
            select(rows.touchpoint, rows.status, rows.breached, _summed_cases(model=rows))
            .where(*selected)
            .group_by(rows.touchpoint, rows.status, rows.breached)
            for rows, selected in _state_spans(where, plan)
        ]
        for edge in plan.edges:
            parts.append(
                select(FollowupCase.touchpoint, FollowupCase.status, FollowupCase.breached, func.count())
                .where(*_cases_selected(_edge_of(where, edge)))
                .group_by(FollowupCase.touchpoint, FollowupCase.status, FollowupCase.breached)
            )
        counts: dict[tuple[str | None, str, bool], int] = {}
        for row in await self._union(parts):
            key = (row[0] or None, row[1], row[2])
            counts[key] = counts.get(key, 0) + int(row[3])
        return [(*key, n) for key, n in counts.items() if n]

    async def _union(self, parts: Sequence[Select[*tuple[Any, ...]]]) -> Sequence[Any]:
        if not parts:
            return []
        result = await self.session.execute(parts[0] if len(parts) == 1 else union_all(*parts))
        return result.all()

    async def steps_by_touchpoint(self, where: ReportFilter) -> list[tuple[str, str, int]]:
        """(touchpoint, funnel step, number of invitations that reached it), steps counted from when
        they happened. A machine's open counts only where no person opened the invitation."""
        person = aliased(InvitationStep)
        opened_by_a_person = (
            select(person.invitation_id)
            .where(
                person.tenant_id == InvitationStep.tenant_id,
                person.invitation_id == InvitationStep.invitation_id,
                person.step == "opened",
            )
            .exists()
        )
        query = select(InvitationStep.touchpoint, InvitationStep.step, func.count()).where(
            InvitationStep.tenant_id == where.tenant_id,
            ~and_(InvitationStep.step == "machine_opened", opened_by_a_person),
        )
        if where.touchpoint is not None:
            query = query.where(InvitationStep.touchpoint == where.touchpoint)
        if where.since is not None:
            query = query.where(InvitationStep.at >= where.since)
        if where.until is not None:
            query = query.where(InvitationStep.at < where.until)
        rows = await self.session.execute(query.group_by(InvitationStep.touchpoint, InvitationStep.step))
        return [(row[0], row[1], row[2]) for row in rows]

    async def latest_responses(self, where: ReportFilter, limit: int) -> Sequence[Response]:
        query = select(Response).where(Response.tenant_id == where.tenant_id)
        if where.touchpoint is not None:
            query = query.where(Response.touchpoint == where.touchpoint)
        if where.since is not None:
            query = query.where(Response.responded_at >= where.since)
        if where.until is not None:
            query = query.where(Response.responded_at < where.until)
        result = await self.session.scalars(
            query.order_by(Response.responded_at.desc(), Response.response_id.desc()).limit(limit)
        )
        return result.all()

    async def verbatims(self, where: VerbatimFilter, limit: int) -> Sequence[Response]:
        """Answers with a comment, newest first, from after ``where.after`` on: at most ``limit``.

        The conditions are the partial indexes' (``comment <> ''``, written as a literal so that a
        generic plan can use them too); q, segment and group filter the keyset scan."""
        query = select(Response).where(
            Response.tenant_id == where.period.tenant_id,
            _COMMENTED,
            Response.responded_at >= where.period.since,
            Response.responded_at < where.period.until,
        )
        if where.period.touchpoint is not None:
            query = query.where(Response.touchpoint == where.period.touchpoint)
        if where.segment is not None:
            query = query.where(_in_segment(where.segment))
        if where.scores is not None:
            query = query.where(Response.score.in_(where.scores))
        if where.q is not None:
            query = query.where(Response.comment.ilike(f"%{_like_escaped(where.q)}%", escape="\\"))
        if where.after is not None:
            query = query.where(
                tuple_(Response.responded_at, Response.response_id)
                < tuple_(where.after.responded_at, where.after.response_id)
            )
        result = await self.session.scalars(
            query.order_by(Response.responded_at.desc(), Response.response_id.desc()).limit(limit)
        )
        return result.all()

    async def cases_of_answers(
        self, tenant_id: uuid.UUID, response_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, CaseLink]:
        """The follow-up case of each answer that has one (the latest opened, should there be two)."""
        if not response_ids:
            return {}
        opened = func.coalesce(FollowupCase.opened_at, FollowupCase.updated_at)
        rows = await self.session.execute(
            select(FollowupCase.response_id, FollowupCase.case_id, FollowupCase.status)
            .where(FollowupCase.tenant_id == tenant_id, FollowupCase.response_id.in_(response_ids))
            .order_by(opened, FollowupCase.case_id)
        )
        # Ordered oldest first: the latest opened case of an answer is the one left in the dict.
        return {row[0]: CaseLink(case_id=row[1], status=row[2]) for row in rows if row[0] is not None}

    async def responses_after(self, period: Period, after: Position | None, limit: int) -> Sequence[Response]:
        """One batch of the responses export: every answer in the period, oldest first, after the
        position (the keyset of ``ix_responses_tenant_responded_at``)."""
        query = select(Response).where(
            Response.tenant_id == period.tenant_id,
            Response.responded_at >= period.since,
            Response.responded_at < period.until,
        )
        if period.touchpoint is not None:
            query = query.where(Response.touchpoint == period.touchpoint)
        if after is not None:
            query = query.where(
                tuple_(Response.responded_at, Response.response_id)
                > tuple_(after.responded_at, after.response_id)
            )
        result = await self.session.scalars(
            query.order_by(Response.responded_at, Response.response_id).limit(limit)
        )
        return result.all()

    async def cases_after(
        self, period: Period, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[FollowupCase]:
        """One batch of the cases export: cases opened (while the opening is unknown, updated) in the
        period, in that order, after the position (the keyset of ``ix_cases_tenant_opened``)."""
        opened = func.coalesce(FollowupCase.opened_at, FollowupCase.updated_at)
        query = select(FollowupCase).where(
            FollowupCase.tenant_id == period.tenant_id, opened >= period.since, opened < period.until
        )
        if period.touchpoint is not None:
            query = query.where(FollowupCase.touchpoint == period.touchpoint)
        if after is not None:
            query = query.where(tuple_(opened, FollowupCase.case_id) > tuple_(*after))
        result = await self.session.scalars(query.order_by(opened, FollowupCase.case_id).limit(limit))
        return result.all()

    async def case_totals(self, where: ReportFilter) -> CaseTotals:
        """Counts and percentiles over the selected cases. A breach is a missed first-contact
        deadline, resolved or not. The counts come from the rollup's whole UTC days and the cases of
        a partial first or last day; the percentiles (``percentile_cont``: see
        :func:`followups.percentile`) from the cases themselves while the range holds at most
        :data:`EXACT_PERCENTILE_CASES`, else from the histogram, within 1 %."""
        plan = plan_case_spans(where.since, where.until)
        parts: list[Select[*tuple[Any, ...]]] = [
            select(*_rolled_up_totals(rows)).where(*selected) for rows, selected in _state_spans(where, plan)
        ]
        parts.extend(
            select(*_raw_totals()).where(*_cases_selected(_edge_of(where, edge))) for edge in plan.edges
        )
        counts = [0] * 6
        for row in await self._union(parts):
            counts = [total + int(n or 0) for total, n in zip(counts, row, strict=True)]
        totals = CaseTotals(
            cases=counts[0],
            contacted=counts[1],
            within_sla=counts[2],
            sla_known=counts[3],
            breached=counts[4],
            resolved=counts[5],
        )
        if totals.cases == 0:
            return totals
        if totals.cases <= EXACT_PERCENTILE_CASES:
            query = select(
                *_percentiles(FollowupCase.seconds_to_contact),
                *_percentiles(FollowupCase.seconds_to_resolution),
            ).where(*_cases_selected(where))
            p = [_float(value) for value in (await self.session.execute(query)).one()]
        else:
            histograms = await self._duration_histograms(where)
            p = [
                histogram_percentile(histograms.get(metric, {}), fraction)
                for metric in (CONTACT, RESOLUTION)
                for fraction in (0.5, 0.9)
            ]
        return dataclasses.replace(
            totals,
            contact_p50_seconds=p[0],
            contact_p90_seconds=p[1],
            resolution_p50_seconds=p[2],
            resolution_p90_seconds=p[3],
            exact_percentiles=totals.cases <= EXACT_PERCENTILE_CASES,
        )

    async def _duration_histograms(self, where: ReportFilter) -> dict[str, dict[int, int]]:
        """Per duration, cases per bucket: the histogram's whole months, the whole days of the
        partial months and the partial first and last day's cases bucketed alike (see
        :func:`case_days.plan_case_spans`), in one statement."""
        plan = plan_case_spans(where.since, where.until)
        parts: list[Select[*tuple[Any, ...]]] = []
        if plan.months is not None:
            months = CaseDurationMonth
            parts.append(
                select(months.metric, months.bucket, _summed_cases(model=months))
                .where(*_months_selected(where, plan.months, months))
                .group_by(months.metric, months.bucket)
            )
        for span in plan.days:
            days = CaseDurationDay
            parts.append(
                select(days.metric, days.bucket, _summed_cases(model=days))
                .where(*_days_selected(where.tenant_id, where.touchpoint, span.first, span.stop, days))
                .group_by(days.metric, days.bucket)
            )
        for edge in plan.edges:
            for metric, seconds in (
                (CONTACT, FollowupCase.seconds_to_contact),
                (RESOLUTION, FollowupCase.seconds_to_resolution),
            ):
                label: ColumnElement[str] = literal_column(f"'{metric}'")
                bucket = _bucket(seconds)
                parts.append(
                    select(label, bucket, func.count())
                    .where(*_cases_selected(_edge_of(where, edge)), seconds.is_not(None))
                    .group_by(bucket)
                )
        histograms: dict[str, dict[int, int]] = {}
        for metric, bucket, n in await self._union(parts):
            histogram = histograms.setdefault(metric, {})
            histogram[bucket] = histogram.get(bucket, 0) + int(n)
        return histograms

    async def case_breakdown(self, where: ReportFilter) -> list[BreakdownCount]:
        """Cases and breaches per owner, per team and per touchpoint (null where the case has none),
        from the rollup's whole UTC days and the cases of a partial first or last day, in one
        statement of grouped queries."""
        plan = plan_case_spans(where.since, where.until)
        parts: list[Select[*tuple[Any, ...]]] = [
            select(
                func.grouping(rows.owner),
                func.grouping(rows.team),
                rows.owner,
                rows.team,
                rows.touchpoint,
                _summed_cases(model=rows),
                _summed_cases(rows.breached, model=rows),
            )
            .where(*selected)
            .group_by(func.grouping_sets(rows.owner, rows.team, rows.touchpoint))
            for rows, selected in _state_spans(where, plan)
        ]
        parts.extend(_raw_breakdown(_edge_of(where, edge)) for edge in plan.edges)
        counts: dict[tuple[BreakdownDimension, str | None], list[int]] = {}
        for row in await self._union(parts):
            # grouping() is 0 for the column the row is grouped by.
            dimension: BreakdownDimension = (
                "owner" if row[0] == 0 else "team" if row[1] == 0 else "touchpoint"
            )
            name = row[2] if dimension == "owner" else row[3] if dimension == "team" else row[4]
            tally = counts.setdefault((dimension, name or None), [0, 0])
            tally[0] += int(row[5])
            tally[1] += int(row[6])
        return [
            BreakdownCount(dimension=dimension, name=name, cases=cases, breached=breached)
            for (dimension, name), (cases, breached) in counts.items()
            if cases
        ]

    async def recovery_scores(self, where: ReportFilter) -> list[RecoveryCount]:
        """Cases per recovery score, by contact speed and by root cause, from the rollup's whole UTC
        days and the cases of a partial first or last day, in one statement; cases without a
        recovery score are left out."""
        plan = plan_case_spans(where.since, where.until)
        parts: list[Select[*tuple[Any, ...]]] = [
            select(
                func.grouping(rows.contact_speed),
                rows.contact_speed,
                rows.root_cause,
                rows.recovery_score,
                _summed_cases(model=rows),
            )
            .where(*selected)
            .group_by(
                func.grouping_sets(
                    tuple_(rows.contact_speed, rows.recovery_score),
                    tuple_(rows.root_cause, rows.recovery_score),
                )
            )
            for rows, selected in _recovery_spans(where, plan)
        ]
        parts.extend(_raw_recovery(_edge_of(where, edge)) for edge in plan.edges)
        counts: dict[tuple[RecoveryDimension, str | None, int], int] = {}
        for row in await self._union(parts):
            dimension: RecoveryDimension = "contact_speed" if row[0] == 0 else "root_cause"
            key = (dimension, (row[1] if row[0] == 0 else row[2]) or None, row[3])
            counts[key] = counts.get(key, 0) + int(row[4])
        return [
            RecoveryCount(dimension=dimension, group=group, recovery_score=score, cases=n)
            for (dimension, group, score), n in counts.items()
            if n
        ]

    # --- Repurchases (see services/reporting/domain/repurchase.py) ------------------------------

    async def lock_purchasers(self, customers: Iterable[tuple[uuid.UUID, str]]) -> None:
        """Serialise, per (tenant, customer), the answers and the purchases that meet in this
        transaction: whichever commits second sees the other, so neither order loses a repurchase.
        Keys in ascending order, so two batches sharing customers cannot deadlock."""
        keys = sorted({_purchaser_key(tenant_id, customer) for tenant_id, customer in customers})
        if keys:
            await self.session.execute(_LOCK_PURCHASERS, {"keys": keys})

    async def record_purchases(self, purchases: Sequence[RecordedPurchase]) -> list[RecordedPurchase]:
        """Keep each purchase once per (tenant, order), the first recorded, for answers that arrive
        after it; returns those this added (a repeat is not)."""
        if not purchases:
            return []
        ordered = sorted(purchases, key=lambda p: (p.tenant_id, p.order_id))
        insert = pg_insert(RecordedPurchase).values([_columns(purchase) for purchase in ordered])
        added = await self.session.execute(
            insert.on_conflict_do_nothing().returning(RecordedPurchase.tenant_id, RecordedPurchase.order_id)
        )
        keys = {(row.tenant_id, row.order_id) for row in added}
        return [purchase for purchase in ordered if (purchase.tenant_id, purchase.order_id) in keys]

    async def mark_repurchases(self, purchases: Sequence[RecordedPurchase]) -> list[Repurchased]:
        """Each answer of these purchases' customers given within the year before one of them keeps
        the earliest such purchase as its first repurchase: one statement. Returns the answers it
        changed, for the rollup."""
        if not purchases:
            return []
        rows = await self.session.execute(
            _MARK_BY_PURCHASES,
            {
                "tenants": [p.tenant_id for p in purchases],
                "customers": [p.customer_id for p in purchases],
                "times": [p.occurred_at for p in purchases],
            },
        )
        return [_repurchased(row) for row in rows]

    async def find_repurchases(self, answers: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> list[Repurchased]:
        """Each of these answers (tenant, response id) keeps the earliest purchase of its customer
        already known that is a repurchase of it: one statement. Returns the answers it changed."""
        keys = sorted(set(answers))
        if not keys:
            return []
        rows = await self.session.execute(
            _MARK_BY_ANSWERS,
            {"tenants": [tenant for tenant, _ in keys], "responses": [response for _, response in keys]},
        )
        return [_repurchased(row) for row in rows]

    async def add_to_repurchase_days(
        self, changes: Mapping[tuple[uuid.UUID, DayKey], RepurchaseTally]
    ) -> None:
        """Add each change to its rollup row (created at zero), in one statement, in key order so
        that concurrent batches cannot deadlock."""
        if not changes:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "touchpoint": touchpoint,
                "day": day,
                "score": score,
                "answers": change.answers,
                **dict(zip(CAME_BACK_COLUMNS, change.came_back, strict=True)),
            }
            for (tenant_id, (touchpoint, day, score)), change in sorted(changes.items())
        ]
        await _add_to_rollup(self.session, RepurchaseDay, rows, ("answers", *CAME_BACK_COLUMNS))

    async def repurchase_counts(
        self, where: ReportFilter, answered_by: datetime, days: int
    ) -> list[ScoreCount]:
        """Per current score: the answers of the range given by ``answered_by``, and of them those
        whose first repurchase came within ``days`` (one of ``WINDOWS``), in one statement: the
        rollup's whole UTC days before ``answered_by``'s, the raw answers of the partial days (that
        one, and a ``since`` or ``until`` that is not midnight)."""
        came_back = getattr(RepurchaseDay, f"came_back_{check_window(days)}")
        day_of_cutoff = datetime.combine(day_of(answered_by), datetime.min.time(), tzinfo=answered_by.tzinfo)
        whole_until = day_of_cutoff if where.until is None else min(where.until, day_of_cutoff)
        parts: list[Select[*tuple[Any, ...]]] = []
        if where.since is None or where.since < whole_until:
            plan = read_plan(where.since, whole_until)
            if plan.whole_days:
                parts.append(
                    select(RepurchaseDay.score, func.sum(RepurchaseDay.answers), func.sum(came_back))
                    .where(*_repurchase_days_selected(where, plan.first_day, plan.stop_day))
                    .group_by(RepurchaseDay.score)
                )
            edges: list[tuple[datetime, datetime | None]] = [(edge.since, edge.until) for edge in plan.edges]
        else:
            edges = []
        tail = day_of_cutoff if where.since is None else max(where.since, day_of_cutoff)
        if where.until is None or tail < where.until:
            edges.append((tail, where.until))
        parts.extend(_raw_repurchases(where, since, until, answered_by, days) for since, until in edges)
        if not parts:
            return []
        counts: dict[int, tuple[int, int]] = {}
        rows = await self.session.execute(parts[0] if len(parts) == 1 else union_all(*parts))
        for score, answers, repurchased in rows:
            known = counts.get(score, (0, 0))
            counts[score] = (known[0] + int(answers or 0), known[1] + int(repurchased or 0))
        # A rollup row whose answers all moved on stays, at zero: no score of the range.
        return [
            ScoreCount(score, answers, repurchased)
            for score, (answers, repurchased) in counts.items()
            if answers or repurchased
        ]


async def _add_to_rollup(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]], counted: Sequence[str]
) -> None:
    """Insert the rows of a rollup, or add their counts to the rows already there (a row is created
    at zero), in one statement. Callers pass the rows in key order so that concurrent batches
    cannot deadlock."""
    insert = pg_insert(model).values(rows)
    table = model.__table__
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=list(table.primary_key),
            set_={name: table.c[name] + insert.excluded[name] for name in counted},
        )
    )


def _answers_selected(where: ReportFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Response.tenant_id == where.tenant_id]
    if where.touchpoint is not None:
        conditions.append(Response.touchpoint == where.touchpoint)
    if where.since is not None:
        conditions.append(Response.responded_at >= where.since)
    if where.until is not None:
        conditions.append(Response.responded_at < where.until)
    return conditions


def _repurchase_days_selected(
    where: ReportFilter, first_day: date | None, stop_day: date | None
) -> list[ColumnElement[bool]]:
    conditions = [RepurchaseDay.tenant_id == where.tenant_id]
    if where.touchpoint is not None:
        conditions.append(RepurchaseDay.touchpoint == where.touchpoint)
    if first_day is not None:
        conditions.append(RepurchaseDay.day >= first_day)
    if stop_day is not None:
        conditions.append(RepurchaseDay.day < stop_day)
    return conditions


def _raw_repurchases(
    where: ReportFilter, since: datetime, until: datetime | None, answered_by: datetime, days: int
) -> Select[*tuple[Any, ...]]:
    """Per score, the answers from ``since`` to ``until`` (exclusive) given by ``answered_by``, and of
    them those that came back within ``days``: the raw rows of a partial day."""
    came_back = Response.repurchased_at <= Response.responded_at + timedelta(days=days)
    part = ReportFilter(where.tenant_id, where.touchpoint, since, until)
    return (
        select(Response.score, func.count(), func.count().filter(came_back))
        .where(*_answers_selected(part), Response.responded_at <= answered_by)
        .group_by(Response.score)
    )


def _repurchased(row: Sequence[Any]) -> Repurchased:
    """A row of the marking statements: tenant, the answer's rolled-up columns, the repurchase before."""
    after = _version(row, 1)
    return Repurchased(row[0], dataclasses.replace(after, repurchased_at=row[1 + len(_ROLLED_UP)]), after)


def _purchaser_key(tenant_id: uuid.UUID, customer_id: str) -> int:
    digest = hashlib.blake2b(
        f"reporting:purchaser:{tenant_id}:{customer_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


#: The rolled-up columns of ``r`` (the answers), as the marking statements return them.
_ROLLED_UP_SQL = ", ".join(f"r.{column.key}" for column in _ROLLED_UP)

_LOCK_PURCHASERS = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")

# The year before each purchase, on ix_responses_tenant_customer_responded_at; an answer keeps the
# earlier of its known first repurchase and the batch's, so the order purchases arrive in is moot.
_MARK_BY_PURCHASES = text(
    "UPDATE reporting.responses AS r SET repurchased_at = m.first_at FROM ("
    "SELECT a.tenant_id, a.response_id, a.repurchased_at AS was, min(b.occurred_at) AS first_at "
    "FROM unnest(CAST(:tenants AS uuid[]), CAST(:customers AS text[]), CAST(:times AS timestamptz[])) "
    "AS b(tenant_id, customer_id, occurred_at) "
    "JOIN reporting.responses AS a ON a.tenant_id = b.tenant_id AND a.customer_id = b.customer_id "
    "AND a.responded_at < b.occurred_at AND a.responded_at >= b.occurred_at - interval '365 days' "
    "GROUP BY a.tenant_id, a.response_id) AS m "
    "WHERE r.tenant_id = m.tenant_id AND r.response_id = m.response_id "
    "AND (r.repurchased_at IS NULL OR r.repurchased_at > m.first_at) "
    f"RETURNING r.tenant_id, {_ROLLED_UP_SQL}, m.was"
)

# The year after each answer, on ix_purchases_tenant_customer_occurred_at.
_MARK_BY_ANSWERS = text(
    "UPDATE reporting.responses AS r SET repurchased_at = m.first_at FROM ("
    "SELECT a.tenant_id, a.response_id, a.repurchased_at AS was, min(p.occurred_at) AS first_at "
    "FROM unnest(CAST(:tenants AS uuid[]), CAST(:responses AS uuid[])) AS b(tenant_id, response_id) "
    "JOIN reporting.responses AS a ON a.tenant_id = b.tenant_id AND a.response_id = b.response_id "
    "JOIN reporting.purchases AS p ON p.tenant_id = a.tenant_id AND p.customer_id = a.customer_id "
    "AND p.occurred_at > a.responded_at AND p.occurred_at <= a.responded_at + interval '365 days' "
    "GROUP BY a.tenant_id, a.response_id) AS m "
    "WHERE r.tenant_id = m.tenant_id AND r.response_id = m.response_id "
    "AND (r.repurchased_at IS NULL OR r.repurchased_at > m.first_at) "
    f"RETURNING r.tenant_id, {_ROLLED_UP_SQL}, m.was"
)


def _segment_keys(
    sort: SegmentSort,
    touchpoint: ColumnElement[str],
    value: ColumnElement[str],
    responses: ColumnElement[int],
    nps: ColumnElement[float | None],
) -> list[tuple[ColumnElement[Any], bool]]:
    """The order ``sort`` names, as (expression, descending), matching :func:`insight.sort_position`."""
    descending = sort.startswith("-")
    if sort in ("responses", "-responses"):
        return [(responses, descending), (touchpoint, False), (value, False)]
    if sort in ("nps", "-nps"):
        return [
            (nps.is_(None), False),
            (func.coalesce(nps, 0.0), descending),
            (touchpoint, False),
            (value, False),
        ]
    return [(value, descending), (touchpoint, False)]


def _cells_selected(where: CellFilter, spans: Sequence[Span]) -> list[ColumnElement[bool]]:
    """The filter's cells in the spans: the primary key's prefix with a touchpoint, else the
    segment index's."""
    conditions = [NpsCell.tenant_id == where.tenant_id, NpsCell.dimension == where.dimension]
    if where.value is not None:
        conditions.append(NpsCell.value == where.value)
    if where.touchpoint is not None:
        conditions.append(NpsCell.touchpoint == where.touchpoint)
    conditions.append(
        or_(
            *(
                and_(NpsCell.bucket == span.bucket, NpsCell.start >= span.first, NpsCell.start < span.stop)
                for span in spans
            )
        )
    )
    return conditions


def _span_cells(where: CellFilter, spans: Sequence[Span]) -> Subquery:
    """The filter's cells (touchpoint, value, distribution) in the spans, one range per span in a
    UNION ALL: each is then one contiguous range of ``ix_nps_cells_tenant_dimension_bucket_start``,
    read index-only. (An OR of the spans makes a bitmap scan, which always reads the heap.)"""
    parts = [
        select(NpsCell.touchpoint, NpsCell.value, *(getattr(NpsCell, name) for name in SCORE_COLUMNS)).where(
            *_cells_selected(where, [span])
        )
        for span in spans
    ]
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("cells")


def _summed() -> list[Label[int]]:
    return [cast(func.sum(getattr(NpsCell, name)), BigInteger).label(name) for name in SCORE_COLUMNS]


def _distribution(row: Sequence[Any], offset: int = 0) -> list[int]:
    return [int(row[offset + index] or 0) for index in range(len(SCORE_COLUMNS))]


def _after(
    keys: Sequence[tuple[ColumnElement[Any], bool]], position: Sequence[object]
) -> ColumnElement[bool]:
    """Rows after ``position`` in the order of ``keys`` (expression, descending): the keyset."""
    alternatives = []
    for index, (key, descending) in enumerate(keys):
        beyond = key < position[index] if descending else key > position[index]
        alternatives.append(and_(*(k == position[i] for i, (k, _) in enumerate(keys[:index])), beyond))
    return or_(*alternatives)


def _cell_key(cell: NpsCell) -> tuple[uuid.UUID, str, str, str, str, date]:
    return (cell.tenant_id, cell.touchpoint, cell.dimension, cell.value, cell.bucket, cell.start)


def _edge_of(where: ReportFilter, edge: Edge) -> ReportFilter:
    return ReportFilter(where.tenant_id, where.touchpoint, edge.since, edge.until)


def _case_days_selected(
    where: ReportFilter, days: WholeDays, model: type[CaseDay] | type[CaseRecoveryDay]
) -> list[ColumnElement[bool]]:
    return _days_selected(where.tenant_id, where.touchpoint, days.first, days.stop, model)


def _months_selected(
    where: ReportFilter,
    months: WholeDays,
    model: type[CaseMonth] | type[CaseRecoveryMonth] | type[CaseDurationMonth],
) -> list[ColumnElement[bool]]:
    """A monthly rollup's rows of the filter's tenant (and touchpoint) in the whole months."""
    conditions = [model.tenant_id == where.tenant_id]
    if where.touchpoint is not None:
        conditions.append(model.touchpoint == where.touchpoint)
    if months.first is not None:
        conditions.append(model.month >= months.first)
    if months.stop is not None:
        conditions.append(model.month < months.stop)
    return conditions


StateRows = type[CaseDay] | type[CaseMonth]
RecoveryRows = type[CaseRecoveryDay] | type[CaseRecoveryMonth]
CaseRollup = StateRows | RecoveryRows | type[CaseDurationDay] | type[CaseDurationMonth]
#: A rollup's key columns in the order of its changes' keys, where that is not its primary key's:
#: the day histogram's key leads with the day (one index range for every touchpoint).
_CASE_ROLLUP_KEYS: dict[CaseRollup, list[str]] = {
    CaseDurationDay: ["tenant_id", "touchpoint", "day", "metric", "bucket"],
}


def _state_spans(where: ReportFilter, plan: CaseSpans) -> list[tuple[StateRows, list[ColumnElement[bool]]]]:
    """The rollup rows (table, conditions) of the plan's whole months and whole days: one index range
    each."""
    spans: list[tuple[StateRows, list[ColumnElement[bool]]]] = []
    if plan.months is not None:
        spans.append((CaseMonth, _months_selected(where, plan.months, CaseMonth)))
    spans.extend((CaseDay, _case_days_selected(where, days, CaseDay)) for days in plan.days)
    return spans


def _recovery_spans(
    where: ReportFilter, plan: CaseSpans
) -> list[tuple[RecoveryRows, list[ColumnElement[bool]]]]:
    spans: list[tuple[RecoveryRows, list[ColumnElement[bool]]]] = []
    if plan.months is not None:
        spans.append((CaseRecoveryMonth, _months_selected(where, plan.months, CaseRecoveryMonth)))
    spans.extend((CaseRecoveryDay, _case_days_selected(where, days, CaseRecoveryDay)) for days in plan.days)
    return spans


def _summed_cases(
    only: SQLColumnExpression[bool] | None = None,
    model: CaseRollup = CaseDay,
) -> ColumnElement[int]:
    total = func.sum(model.cases) if only is None else func.sum(model.cases).filter(only)
    return cast(func.coalesce(total, 0), BigInteger)


def _rolled_up_totals(rows: StateRows) -> tuple[ColumnElement[int], ...]:
    """:class:`CaseTotals`' counts (cases, contacted, within_sla, sla_known, breached, resolved)
    summed over a rollup's rows; :func:`_raw_totals` counts the same over cases."""
    return (
        _summed_cases(model=rows),
        _summed_cases(rows.contacted, model=rows),
        _summed_cases(rows.sla == SLA_MET, model=rows),
        _summed_cases(or_(rows.sla != "", rows.breached), model=rows),
        _summed_cases(rows.breached, model=rows),
        _summed_cases(rows.status == "resolved", model=rows),
    )


def _raw_totals() -> tuple[ColumnElement[int], ...]:
    within = FollowupCase.contact_within_sla
    return (
        func.count(),
        func.count(FollowupCase.seconds_to_contact),
        func.count().filter(within.is_(True)),
        func.count().filter(or_(within.is_not(None), FollowupCase.breached)),
        func.count().filter(FollowupCase.breached),
        func.count().filter(FollowupCase.status == "resolved"),
    )


def _bucket(seconds: SQLColumnExpression[float | None]) -> ColumnElement[int]:
    """:func:`case_days.bucket_of` in SQL (as migration 0012 has it), written without parameters
    so that the GROUP BY expression matches the select list's."""
    logarithm = func.floor(func.ln(seconds) / func.ln(literal_column(repr(RATIO))))
    return case(
        (seconds <= literal_column("0"), literal_column(str(ZERO_BUCKET))), else_=cast(logarithm, Integer)
    )


def _raw_breakdown(where: ReportFilter) -> Select[*tuple[Any, ...]]:
    """Cases and breaches per owner, per team and per touchpoint of the filter's cases."""
    owner, team, touchpoint = FollowupCase.assignee_name, FollowupCase.team_name, FollowupCase.touchpoint
    return (
        select(
            func.grouping(owner),
            func.grouping(team),
            owner,
            team,
            touchpoint,
            func.count(),
            func.count().filter(FollowupCase.breached),
        )
        .where(*_cases_selected(where))
        .group_by(func.grouping_sets(owner, team, touchpoint))
    )


def _raw_recovery(where: ReportFilter) -> Select[*tuple[Any, ...]]:
    """Cases per recovery score, by contact speed and by root cause, of the filter's cases."""
    seconds = FollowupCase.seconds_to_contact
    speed = case(
        (seconds.is_(None), literal_column(f"'{NEVER_CONTACTED}'")),
        (seconds <= literal_column(repr(FAST_CONTACT_SECONDS)), literal_column(f"'{WITHIN_24_H}'")),
        else_=literal_column(f"'{LATER}'"),
    )
    # Grouped outside the subquery, so the grouping sets name plain columns.
    cases = (
        select(
            speed.label("speed"),
            FollowupCase.root_cause.label("cause"),
            FollowupCase.recovery_score.label("score"),
        )
        .where(*_cases_selected(where), FollowupCase.recovery_score.is_not(None))
        .subquery()
    )
    return select(
        func.grouping(cases.c.speed), cases.c.speed, cases.c.cause, cases.c.score, func.count()
    ).group_by(func.grouping_sets(tuple_(cases.c.speed, cases.c.score), tuple_(cases.c.cause, cases.c.score)))


def _cases_selected(where: ReportFilter) -> list[ColumnElement[bool]]:
    """The filter's cases: opened (or, while the opening is unknown, updated) from ``since`` on.

    The expression is the one ``ix_cases_tenant_opened`` indexes."""
    conditions = [FollowupCase.tenant_id == where.tenant_id]
    if where.touchpoint is not None:
        conditions.append(FollowupCase.touchpoint == where.touchpoint)
    if where.since is not None:
        conditions.append(func.coalesce(FollowupCase.opened_at, FollowupCase.updated_at) >= where.since)
    if where.until is not None:
        conditions.append(func.coalesce(FollowupCase.opened_at, FollowupCase.updated_at) < where.until)
    return conditions


#: An answer with a comment: the predicate of the feed's partial indexes, exactly.
_COMMENTED = Response.comment.op("<>")(literal_column("''"))


def _like_escaped(text: str) -> str:
    """The text as a LIKE pattern matching only itself (with ``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: What scoring strips from a segment value (``services/scoring/domain/segments.py``'s ``_clean``):
#: control characters anywhere, then the characters Python's ``str.strip`` removes at either end
#: (those that are not control characters too), at most 200 characters kept.
_CONTROL_CHARACTERS = r"[\x01-\x1f\x7f-\x9f]"
STRIPPED = " \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_MAX_VALUE_LENGTH = 200


# ``comment <> ''`` is the predicate of ix_responses_commented, which the scan reads.
_RETAIN_COMMENTS = retention_update(
    schema="reporting",
    table="responses",
    key="response_id",
    time_column="responded_at",
    months="retention_comments_months",
    pending="r.comment <> ''",
    changes="comment = NULL",
)


def _cleaned(value: SQLColumnExpression[Any]) -> ColumnElement[str]:
    """A segment value as scoring names it: no control characters, trimmed, at most 200 characters."""
    bare = func.regexp_replace(value, _CONTROL_CHARACTERS, "", "g")
    return func.btrim(func.left(func.btrim(bare, STRIPPED), _MAX_VALUE_LENGTH), STRIPPED)


def _in_segment(segment: Segment) -> ColumnElement[bool]:
    """The answer is in the segment as scoring counts it (its cells): each built-in dimension by its
    rule, values cleaned as scoring cleans them, an answer's categories without repeats (the first
    5). Not known here: which values scoring bounded into ``(other)``, and which dimensions a
    tenant declared (any other dimension is read as the attribute of that name); see the README."""
    if segment.dimension == "language":
        primary = func.split_part(func.replace(Response.locale, "_", "-"), "-", 1)
        return _cleaned(func.lower(primary)) == segment.value
    if segment.dimension == "account":
        return _cleaned(Response.account_id) == segment.value
    if segment.dimension == "category":
        raw = func.coalesce(Response.attributes["category"].astext, Response.attributes["categories"].astext)
        parts = (
            func.unnest(func.string_to_array(raw, ","))
            .table_valued("part", with_ordinality="n")
            .render_derived()
        )
        value = _cleaned(parts.c.part)
        distinct = (
            select(value.label("value"), func.min(parts.c.n).label("n"))
            .select_from(parts)
            .where(value != "")
            .group_by(value)
            .subquery()
        )
        categories = select(distinct.c.value).order_by(distinct.c.n).limit(MAX_CATEGORIES)
        return literal(segment.value).in_(categories)
    return _cleaned(Response.attributes[segment.dimension].astext) == segment.value


def _percentiles(column: SQLColumnExpression[float | None]) -> tuple[ColumnElement[float], ...]:
    return tuple(func.percentile_cont(fraction).within_group(column) for fraction in (0.5, 0.9))


def _float(value: object) -> float | None:
    return None if value is None else float(str(value))
