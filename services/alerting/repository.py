"""Every query the alerting service makes, as :class:`AlertingRepository`, one method a query, over
a unit of work's session (``uow.repository``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    DateTime,
    Integer,
    Select,
    Table,
    Text,
    Uuid,
    and_,
    any_,
    bindparam,
    column,
    delete,
    false,
    func,
    inspect,
    not_,
    or_,
    select,
    tuple_,
    update,
    values,
)
from sqlalchemy import case as sql_case
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from libs.common.jobs import Due
from libs.common.privacy import SECTION_LIMIT, KeysetSection, Section, customer_pages
from libs.common.retention import retention_update
from services.alerting.desk_rows import CaseDetail, Choice, DeskPage, DeskRow
from services.alerting.domain.desk import BAND_SCORES, UNASSIGNED, CaseFilter, Cursor, Scope
from services.alerting.domain.notices import Notice
from services.alerting.domain.policy import DeskPolicy
from services.alerting.models import (
    COMMON,
    SESSIONS,
    Answer,
    Base,
    CaseEvent,
    DeskSettings,
    FollowupCase,
    MagicLink,
    Notification,
    RoutingRule,
    Team,
    TeamMember,
    User,
    WebhookDelivery,
)
from services.alerting.repository_webhooks import WebhookQueries
from services.alerting.schemas import desk_policy


@dataclass(frozen=True)
class TenantInfo:
    known: bool
    owner_email: str | None


@dataclass(frozen=True, slots=True)
class CaseNotice:
    """A notification to queue about a case (``case_id``), or a digest of many (``None``)."""

    tenant_id: uuid.UUID
    case_id: uuid.UUID | None
    notice: Notice
    #: ``email``; ``slack`` or ``teams`` with the team's id as the notice's recipient.
    channel: str = "email"
    #: Tells apart notices of one kind to one recipient, e.g. a digest's date.
    key: str | None = None

    @property
    def dedup_key(self) -> str:
        subject = str(self.case_id) if self.case_id is not None else f"digest:{self.key}"
        return f"{subject}:{self.notice.kind.value}:{self.channel}:{self.notice.recipient}"[:200]


class NotificationSent(NamedTuple):
    """An email the server accepted."""

    id: int
    sent_at: datetime


class NotificationUnsent(NamedTuple):
    """An email the server did not take: it waits for ``next_attempt_at``, or failed at ``failed_at``."""

    id: int
    #: The attempts of our claim: the outcome is recorded only while the claim stands.
    attempts: int
    next_attempt_at: datetime | None
    failed_at: datetime | None
    error: str


class TenantRef(NamedTuple):
    id: uuid.UUID
    name: str


class MagicLinkUse(NamedTuple):
    """A magic link that was just used: whose it was, and where it was to lead."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    next_path: str | None


_NOTIFICATIONS = cast(Table, Notification.__table__)
_CASE_EVENTS = cast(Table, CaseEvent.__table__)
_NewRow = TypeVar("_NewRow", Answer, FollowupCase)


def _given_columns(row: Base) -> dict[str, object]:
    """The columns set on a new (transient) row: what its INSERT writes. Those left unset get
    their default, as they would from an INSERT naming only the others."""
    state = inspect(row)
    return {
        attribute.key: getattr(row, attribute.key)
        for attribute in state.mapper.column_attrs
        if attribute.key in state.dict
    }


@dataclass(frozen=True, slots=True)
class People:
    """A tenant's people and teams as routing and escalation see them."""

    users: dict[uuid.UUID, User]
    teams: dict[uuid.UUID, Team]
    #: (team, user), each team's members in the order they joined.
    members: list[tuple[uuid.UUID, uuid.UUID]]
    open_cases: dict[uuid.UUID, int]


@dataclass(slots=True)
class _AnswerBatch:
    """A consumer batch of answers as :meth:`AlertingRepository.answer_batch` holds it: the answers,
    cases and tenants it is about, read up front in one query each (rows locked), and the timeline
    lines and notifications it adds, written together."""

    #: Response id -> its held version (``None``: none held). New versions join it as they are held.
    answers: dict[uuid.UUID, Answer | None]
    #: Response id -> its case (``None``: none). New cases join it as they are opened.
    cases: dict[uuid.UUID, FollowupCase | None]
    tenants: dict[uuid.UUID, TenantInfo]
    case_events: list[CaseEvent] = field(default_factory=list)
    notices: list[CaseNotice] = field(default_factory=list)
    #: The ``after`` of the notices waiting (one delay per statement).
    notice_delay: timedelta | None = None


def _uuids(name: str, ids: Iterable[uuid.UUID]) -> BindParameter[Sequence[uuid.UUID]]:
    """An array parameter, for ``= ANY(...)``: one cached statement whatever the batch's size."""
    return bindparam(name, sorted(set(ids)), type_=ARRAY(Uuid[uuid.UUID]()))


class SlaCount(NamedTuple):
    priority: str
    unresolved: int
    due_soon: int
    breached: int


#: What an erased text becomes where the column must hold one (a notification's subject and body).
ERASED_TEXT = "(erased)"
#: Keys of a timeline entry's data that may hold what the customer wrote or who they are.
_PERSONAL_DATA_KEYS = ["comment", "name", "email", "note", "customer_name", "customer_email", "attributes"]


class AlertingRepository(WebhookQueries):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # Read once per unit of work (a consumer's batch): settings and people change rarely.
        self._policies: dict[uuid.UUID, DeskPolicy] = {}
        self._people: dict[uuid.UUID, People] = {}
        self._rules: dict[uuid.UUID, Sequence[RoutingRule]] = {}
        self._batch: _AnswerBatch | None = None

    async def erase_customer(self, tenant_id: uuid.UUID, customer_id: str, now: datetime) -> dict[str, int]:
        """Anonymise a customer's cases, their timelines, their answers and the emails about them,
        each found by ``(tenant, customer)`` or by case. Cases keep status, times, score, priority,
        owner and team (the desk's and the report's counts); they lose the customer's address, name,
        comment, attributes, notes and resolution note. Timeline lines keep their kind and time and
        lose their text. Emails about the cases lose subject and body; one not sent yet is not sent.
        A digest (about many cases) has the customer's name and address blanked out of its body (their
        id, the tenant's own key, may be a part of another customer's and is left)."""
        cases = (
            await self._session.execute(
                select(FollowupCase.id, FollowupCase.customer_name, FollowupCase.customer_email)
                .where(FollowupCase.tenant_id == tenant_id, FollowupCase.customer_id == customer_id)
                .order_by(FollowupCase.id)
                .with_for_update()
            )
        ).all()
        answers = (
            await self._session.execute(
                select(Answer.customer_name, Answer.customer_email).where(
                    Answer.tenant_id == tenant_id, Answer.customer_id == customer_id
                )
            )
        ).all()
        case_ids = [row.id for row in cases]
        names = {
            text
            for row in (*cases, *answers)
            for text in (row.customer_name, row.customer_email)
            if text and len(text) >= 3
        }
        counts = {"cases": len(case_ids), "case_events": 0, "answers": 0, "notifications": 0, "digests": 0}
        if case_ids:
            await self._session.execute(
                update(FollowupCase)
                .where(FollowupCase.id.in_(case_ids))
                .values(
                    customer_email=None,
                    customer_name=None,
                    comment=None,
                    note=None,
                    resolution_note=None,
                    attributes={},
                )
            )
            events = await self._session.execute(
                update(CaseEvent)
                .where(CaseEvent.case_id.in_(case_ids))
                .values(body=None, data=CaseEvent.data.op("-")(sql_cast(_PERSONAL_DATA_KEYS, ARRAY(Text))))
            )
            counts["case_events"] = int(getattr(events, "rowcount", 0) or 0)
            await self._session.execute(
                update(Notification)
                .where(
                    Notification.tenant_id == tenant_id,
                    Notification.case_id.in_(case_ids),
                    Notification.sent_at.is_(None),
                    Notification.failed_at.is_(None),
                )
                .values(failed_at=now, last_error="the customer was erased")
            )
            emails = await self._session.execute(
                update(Notification)
                .where(Notification.tenant_id == tenant_id, Notification.case_id.in_(case_ids))
                .values(subject=ERASED_TEXT, body=ERASED_TEXT)
            )
            counts["notifications"] = int(getattr(emails, "rowcount", 0) or 0)
        erased_answers = await self._session.execute(
            update(Answer)
            .where(Answer.tenant_id == tenant_id, Answer.customer_id == customer_id)
            .values(customer_email=None, customer_name=None, comment=None, context=None)
        )
        counts["answers"] = int(getattr(erased_answers, "rowcount", 0) or 0)
        if names:
            # Longest first: a name that contains another is blanked whole.
            body: ColumnElement[str] = Notification.__table__.c.body
            for text in sorted(names, key=len, reverse=True):
                body = func.replace(body, text, ERASED_TEXT)
            mentions = [func.strpos(Notification.body, text) > 0 for text in sorted(names)]
            digests = await self._session.execute(
                update(Notification)
                .where(Notification.tenant_id == tenant_id, Notification.case_id.is_(None), or_(*mentions))
                .values(body=body)
            )
            counts["digests"] = int(getattr(digests, "rowcount", 0) or 0)
        return counts

    # --- Privacy: retention ---------------------------------------------------------------------

    async def apply_retention(self, now: datetime, limit: int) -> int:
        """One batch past each tenant's comments retention: the customer's comment removed from
        alerting's copy of the answers and from the cases, and the text of the emails about them
        that went out (they quote it); scores, states, timelines and the emails' records stay."""
        cleared = 0
        for statement in (_RETAIN_ANSWER_COMMENTS, _RETAIN_CASE_COMMENTS, _RETAIN_NOTIFICATION_TEXT):
            result = await self._session.execute(statement, {"now": now, "limit": limit - cleared})
            cleared += int(getattr(result, "rowcount", 0) or 0)
            if cleared >= limit:
                break
        return cleared

    # --- Privacy: a customer's data (export) ----------------------------------------------------

    def customer_sections(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, KeysetSection]:
        """What alerting holds about one customer of one tenant, by kind, each read in pages down an
        index: the follow-up cases, their notes, contacts and the rest of their timelines, the emails
        and chat messages about them (they quote the comment), alerting's copy of the answers and
        the outbound webhook deliveries about the customer. Staff addresses (owner, account owner,
        an email's recipient) are the tenant's people's data, not the customer's; a digest tells of
        many customers' cases and is not given."""
        of_cases = select(FollowupCase.id).where(
            FollowupCase.tenant_id == tenant_id, FollowupCase.customer_id == customer_id
        )

        def timeline(*kinds: str, other: bool = False) -> KeysetSection:
            kind = CaseEvent.kind.not_in(kinds) if other else CaseEvent.kind.in_(kinds)
            return KeysetSection(
                select(
                    CaseEvent.case_id,
                    CaseEvent.kind,
                    CaseEvent.at,
                    CaseEvent.actor,
                    CaseEvent.body,
                    CaseEvent.data,
                ).where(CaseEvent.tenant_id == tenant_id, kind, CaseEvent.case_id.in_(of_cases)),
                (CaseEvent.id,),
            )

        status = sql_case(
            (Notification.sent_at.is_not(None), "sent"),
            (Notification.failed_at.is_not(None), "failed"),
            else_="pending",
        )
        return {
            "cases": KeysetSection(
                select(FollowupCase.__table__).where(
                    FollowupCase.tenant_id == tenant_id, FollowupCase.customer_id == customer_id
                ),
                (FollowupCase.opened_at, FollowupCase.id),
                omit=("owner_email", "account_owner_email"),
            ),
            "notes": timeline("note"),
            "contacts": timeline("contact"),
            "timeline": timeline("note", "contact", other=True),
            "notifications": KeysetSection(
                select(
                    Notification.case_id,
                    Notification.kind,
                    Notification.channel,
                    Notification.subject,
                    Notification.body,
                    status.label("status"),
                    Notification.attempts,
                    Notification.created_at,
                    Notification.sent_at,
                    Notification.failed_at,
                ).where(Notification.tenant_id == tenant_id, Notification.case_id.in_(of_cases)),
                (Notification.id,),
            ),
            "answers": KeysetSection(
                select(Answer.__table__).where(
                    Answer.tenant_id == tenant_id, Answer.customer_id == customer_id
                ),
                (Answer.responded_at, Answer.response_id),
            ),
            "webhook_deliveries": KeysetSection(
                select(
                    WebhookDelivery.message_id,
                    WebhookDelivery.event_type,
                    WebhookDelivery.payload,
                    WebhookDelivery.state,
                    WebhookDelivery.attempts,
                    WebhookDelivery.created_at,
                    WebhookDelivery.delivered_at,
                    WebhookDelivery.failed_at,
                ).where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.customer_id == customer_id),
                (WebhookDelivery.id,),
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
        """A page of alerting's sections (:meth:`customer_sections`), as every ``/data`` gives."""
        return await customer_pages(
            self._session,
            self.customer_sections(tenant_id, customer_id),
            section=section,
            after=after,
            limit=limit,
        )

    @contextlib.asynccontextmanager
    async def answer_batch(self, answers: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> AsyncIterator[None]:
        """Serve a batch of answers ((tenant, response id) pairs) from state read up front: their
        held versions and cases (locked), their tenants, desk policies, people and routing rules,
        one query each for the whole batch; new answers and cases are added to the session (written
        when it flushes) and timeline lines and notifications are written together at the end.
        Nothing is written if the block fails: its transaction is to be rolled back."""
        await self.prefetch_answers(answers)
        try:
            yield
            await self._write_batch()
        finally:
            self._batch = None

    async def prefetch_answers(self, answers: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Read what :meth:`answer_batch` serves, for these (tenant, response id) pairs."""
        response_ids = [response_id for _, response_id in answers]
        tenant_ids = {tenant_id for tenant_id, _ in answers}
        held = await self._session.scalars(
            select(Answer)
            .where(Answer.response_id == any_(_uuids("response_ids", response_ids)))
            .order_by(Answer.response_id)
            .with_for_update()
        )
        cases = await self._session.scalars(
            select(FollowupCase)
            .where(FollowupCase.response_id == any_(_uuids("response_ids", response_ids)))
            .order_by(FollowupCase.id)
            .with_for_update()
        )
        batch = _AnswerBatch(
            answers=dict.fromkeys(response_ids),
            cases=dict.fromkeys(response_ids),
            tenants={tenant_id: TenantInfo(known=False, owner_email=None) for tenant_id in tenant_ids},
        )
        batch.answers.update({answer.response_id: answer for answer in held})
        batch.cases.update({case.response_id: case for case in cases})
        owners = await self.owner_emails(tenant_ids)
        batch.tenants.update({tenant_id: TenantInfo(True, email) for tenant_id, email in owners.items()})
        await self.desk_policies(tenant_ids)
        self._batch = batch

    async def _write_batch(self) -> None:
        """Write what the batch added and is still waiting: its timeline lines and notifications."""
        batch = self._batch
        if batch is None:
            return
        events, batch.case_events = batch.case_events, []
        await self._insert_case_events(events)
        notices, batch.notices = batch.notices, []
        await self._insert_notifications(notices, after=batch.notice_delay)

    async def tenant_info(self, tenant_id: uuid.UUID) -> TenantInfo:
        if self._batch is not None and tenant_id in self._batch.tenants:
            return self._batch.tenants[tenant_id]
        table = COMMON.tenants
        row = (
            await self._session.execute(select(table.c.owner_email).where(table.c.id == tenant_id))
        ).first()
        return TenantInfo(known=row is not None, owner_email=row.owner_email if row is not None else None)

    async def owner_emails(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """The owner email of each of these tenants that is known, one query for them all."""
        wanted = set(tenant_ids)
        if not wanted:
            return {}
        table = COMMON.tenants
        rows = await self._session.execute(
            select(table.c.id, table.c.owner_email).where(table.c.id == any_(_uuids("tenant_ids", wanted)))
        )
        return {row.id: row.owner_email for row in rows}

    async def lock_answer(self, response_id: uuid.UUID) -> Answer | None:
        """The held version of an answer, locked until the transaction ends."""
        if self._batch is not None and response_id in self._batch.answers:
            return self._batch.answers[response_id]
        return await self._session.scalar(
            select(Answer).where(Answer.response_id == response_id).with_for_update()
        )

    async def insert_answer(self, answer: Answer) -> bool:
        """Hold a first version of an answer; false when one is held already."""
        batch = self._batch
        if batch is not None and answer.response_id in batch.answers:
            return self._add_first(batch.answers, answer.response_id, answer)
        return await self._insert_first(answer, Answer.response_id)

    async def case_of_response(self, tenant_id: uuid.UUID, response_id: uuid.UUID) -> FollowupCase | None:
        """The answer's case, locked: a request may be changing it at the same moment."""
        if self._batch is not None and response_id in self._batch.cases:
            case = self._batch.cases[response_id]
            return case if case is not None and case.tenant_id == tenant_id else None
        return await self._session.scalar(
            select(FollowupCase)
            .where(FollowupCase.response_id == response_id, FollowupCase.tenant_id == tenant_id)
            .with_for_update()
        )

    async def insert_case(self, case: FollowupCase) -> bool:
        """Insert a case unless its answer has one already; true when this call created it."""
        batch = self._batch
        if batch is not None and case.response_id in batch.cases:
            return self._add_first(batch.cases, case.response_id, case)
        return await self._insert_first(case, FollowupCase.response_id)

    def _add_first(self, held: dict[uuid.UUID, _NewRow | None], response_id: uuid.UUID, row: _NewRow) -> bool:
        """A batch's new answer or case, unless it has one: added to the session, which writes the
        batch's new rows together when it flushes (their response ids are unique, so a row another
        transaction wrote meanwhile fails the batch, and the consumer handles its events again)."""
        if held[response_id] is not None:
            return False
        held[response_id] = row
        self._session.add(row)
        return True

    async def _insert_first(
        self, row: Answer | FollowupCase, unique: InstrumentedAttribute[uuid.UUID]
    ) -> bool:
        """Insert ``row`` unless one with the same ``unique`` value exists; true when this call did."""
        created = await self._session.scalar(
            pg_insert(type(row))
            .values(**_given_columns(row))
            .on_conflict_do_nothing(index_elements=[unique])
            .returning(unique)
        )
        return created is not None

    async def queue_notifications(
        self, notices: Sequence[CaseNotice], *, after: timedelta | None = None
    ) -> None:
        """Queue emails, one statement per few thousand; a case's email of a kind is queued once. Due
        now by the database's clock (which the notifier compares against), or ``after`` that. In a
        batch of answers, queued with the batch's others at its end."""
        batch = self._batch
        if batch is None:
            await self._insert_notifications(notices, after=after)
            return
        if batch.notices and batch.notice_delay != after:
            await self._write_batch()
        batch.notices.extend(notices)
        batch.notice_delay = after

    async def _insert_notifications(
        self, notices: Sequence[CaseNotice], *, after: timedelta | None = None
    ) -> None:
        if not notices:
            return
        rows: list[dict[str, object]] = [
            {
                "tenant_id": queued.tenant_id,
                "case_id": queued.case_id,
                "kind": queued.notice.kind.value,
                "channel": queued.channel,
                "dedup_key": queued.dedup_key,
                "recipient": queued.notice.recipient,
                "subject": queued.notice.subject,
                "body": queued.notice.body,
                "attempts": 0,
            }
            for queued in notices
        ]
        # A list of parameters, not a VALUES clause of every row: the statement is compiled once
        # (and cached), where compiling thousands of rows' VALUES took longer than running them.
        statement = pg_insert(_NOTIFICATIONS).on_conflict_do_nothing(
            index_elements=[_NOTIFICATIONS.c.dedup_key]
        )
        if after is not None:
            statement = statement.values(next_attempt_at=func.now() + after)
        await self._session.execute(statement, rows)

    async def rewrite_pending(
        self, case_id: uuid.UUID, kind: str, *, subject: str, body: str, channel: str = "email"
    ) -> bool:
        """Rewrite a notification not sent yet (the answer changed meanwhile); false if it went out."""
        await self._write_batch()
        result = await self._session.execute(
            update(Notification)
            .where(
                Notification.case_id == case_id,
                Notification.kind == kind,
                Notification.channel == channel,
                Notification.sent_at.is_(None),
                Notification.failed_at.is_(None),
            )
            .values(subject=subject, body=body)
            .returning(Notification.id)
        )
        return result.first() is not None

    async def withdraw_pending(self, case_id: uuid.UUID, kind: str, reason: str) -> bool:
        """Never send a notification that no longer holds (the case closed before it went out)."""
        await self._write_batch()
        result = await self._session.execute(
            update(Notification)
            .where(
                Notification.case_id == case_id,
                Notification.kind == kind,
                Notification.sent_at.is_(None),
                Notification.failed_at.is_(None),
            )
            .values(failed_at=func.now(), last_error=reason)
            .returning(Notification.id)
        )
        return result.first() is not None

    async def get_case(
        self, tenant_id: uuid.UUID, case_id: uuid.UUID, *, for_update: bool = False
    ) -> FollowupCase | None:
        query = select(FollowupCase).where(FollowupCase.id == case_id, FollowupCase.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        return await self._session.scalar(query)

    async def sla_counts(self, now: datetime, soon: datetime) -> list[SlaCount]:
        """Per priority, in one query over the unresolved cases (a partial index): how many are
        unresolved, how many have a deadline (first contact, or resolution) passed and not met,
        and how many of the rest have one coming by ``soon``."""
        contact_late = and_(FollowupCase.status == "open", FollowupCase.due_at <= now)
        resolve_late = and_(
            FollowupCase.resolution_due_at.is_not(None), FollowupCase.resolution_due_at <= now
        )
        breached = or_(contact_late, resolve_late)
        coming = or_(
            and_(FollowupCase.status == "open", FollowupCase.due_at <= soon),
            and_(FollowupCase.resolution_due_at.is_not(None), FollowupCase.resolution_due_at <= soon),
        )
        rows = await self._session.execute(
            select(
                FollowupCase.priority,
                func.count(),
                func.count().filter(and_(coming, not_(breached))),
                func.count().filter(breached),
            )
            .where(FollowupCase.status != "resolved")
            .group_by(FollowupCase.priority)
        )
        return [
            SlaCount(priority, int(unresolved), int(due), int(late))
            for priority, unresolved, due, late in rows
        ]

    async def count_open_cases(self) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(FollowupCase).where(FollowupCase.status == "open")
        )
        return int(count or 0)

    # Desk policy, routing and the SLA clock

    async def desk_config(self, tenant_id: uuid.UUID) -> dict[str, object] | None:
        return await self._session.scalar(
            select(DeskSettings.config).where(DeskSettings.tenant_id == tenant_id)
        )

    async def desk_policies(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DeskPolicy]:
        """The policy of each tenant, one query for them all; those without settings get the defaults."""
        wanted = set(tenant_ids)
        missing = wanted - self._policies.keys()
        if missing:
            rows = await self._session.execute(
                select(DeskSettings.tenant_id, DeskSettings.config).where(DeskSettings.tenant_id.in_(missing))
            )
            stored = {row.tenant_id: row.config for row in rows}
            for tenant_id in missing:
                self._policies[tenant_id] = desk_policy(stored.get(tenant_id))
        return {tenant_id: self._policies[tenant_id] for tenant_id in wanted}

    async def desk_policy(self, tenant_id: uuid.UUID) -> DeskPolicy:
        return (await self.desk_policies([tenant_id]))[tenant_id]

    async def save_desk_config(self, tenant_id: uuid.UUID, config: dict[str, object], now: datetime) -> None:
        statement = pg_insert(DeskSettings).values(tenant_id=tenant_id, config=config, updated_at=now)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[DeskSettings.tenant_id], set_={"config": config, "updated_at": now}
            )
        )
        self._policies.pop(tenant_id, None)

    async def routing_rules(self, tenant_id: uuid.UUID) -> Sequence[RoutingRule]:
        """The tenant's rules in order (``when`` in ``conditions``, ``then`` in ``target``), kept for
        the unit of work."""
        if tenant_id not in self._rules:
            wanted = self._with_batch_tenants(tenant_id, self._rules.keys())
            result = await self._session.scalars(
                select(RoutingRule)
                .where(RoutingRule.tenant_id == any_(_uuids("tenant_ids", wanted)))
                .order_by(RoutingRule.tenant_id, RoutingRule.position)
            )
            rules: dict[uuid.UUID, list[RoutingRule]] = {each: [] for each in wanted}
            for rule in result:
                rules[rule.tenant_id].append(rule)
            self._rules.update(rules)
        return self._rules[tenant_id]

    def _with_batch_tenants(self, tenant_id: uuid.UUID, cached: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """The tenant, and in a batch of answers the batch's other tenants not read yet: what one
        query reads at once."""
        wanted = {tenant_id}
        if self._batch is not None:
            wanted |= self._batch.tenants.keys() - set(cached)
        return wanted

    async def replace_routing_rules(self, tenant_id: uuid.UUID, rules: Sequence[RoutingRule]) -> None:
        """The tenant's rules become ``rules``, in one transaction: cases already open keep their owner."""
        await self._session.execute(delete(RoutingRule).where(RoutingRule.tenant_id == tenant_id))
        self._session.add_all(rules)
        await self._session.flush()
        self._rules.pop(tenant_id, None)

    async def known_people(
        self, tenant_id: uuid.UUID, user_ids: Iterable[uuid.UUID], team_ids: Iterable[uuid.UUID]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Which of these users and teams are the tenant's."""
        users = await self._session.scalars(
            select(User.id).where(User.tenant_id == tenant_id, User.id.in_(list(user_ids)))
        )
        teams = await self._session.scalars(
            select(Team.id).where(Team.tenant_id == tenant_id, Team.id.in_(list(team_ids)))
        )
        return set(users.all()), set(teams.all())

    async def people(self, tenant_id: uuid.UUID) -> People:
        """The tenant's people and teams (members in the order they joined) and each person's open
        cases: what routing and escalation need, four queries (for all the tenants of a batch of
        answers at once), kept for the unit of work."""
        if tenant_id not in self._people:
            wanted = self._with_batch_tenants(tenant_id, self._people.keys())
            self._people.update(await self._load_people(wanted))
        return self._people[tenant_id]

    async def _load_people(self, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, People]:
        found = {tenant_id: People(users={}, teams={}, members=[], open_cases={}) for tenant_id in tenant_ids}
        tenants = _uuids("tenant_ids", tenant_ids)
        for user in await self._session.scalars(select(User).where(User.tenant_id == any_(tenants))):
            found[user.tenant_id].users[user.id] = user
        for team in await self._session.scalars(select(Team).where(Team.tenant_id == any_(tenants))):
            found[team.tenant_id].teams[team.id] = team
        members = await self._session.execute(
            select(TeamMember.tenant_id, TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.tenant_id == any_(tenants))
            .order_by(TeamMember.joined_at, TeamMember.user_id)
        )
        for row in members:
            found[row.tenant_id].members.append((row.team_id, row.user_id))
        load = await self._session.execute(
            select(FollowupCase.tenant_id, FollowupCase.assignee_user_id, func.count())
            .where(
                FollowupCase.tenant_id == any_(tenants),
                FollowupCase.status != "resolved",
                FollowupCase.assignee_user_id.is_not(None),
            )
            .group_by(FollowupCase.tenant_id, FollowupCase.assignee_user_id)
        )
        for tenant_id, user_id, count in load:
            if user_id is not None:
                found[tenant_id].open_cases[user_id] = count
        return found

    async def advance_team_cursor(self, team_id: uuid.UUID, cursor: int) -> None:
        if self._batch is not None:
            loaded = (people.teams[team_id] for people in self._people.values() if team_id in people.teams)
            team = next(loaded, None)
            if team is not None:
                # A row of this session: written when it flushes, with the batch's other changes.
                team.cursor = cursor
                return
        await self._session.execute(update(Team).where(Team.id == team_id).values(cursor=cursor))

    async def clock_due(self, now: datetime, limit: int) -> Sequence[FollowupCase]:
        """Up to ``limit`` cases whose SLA clock has a step due by ``now``, earliest first, locked;
        SKIP LOCKED lets replicas share the work and leaves a case being changed for the next round.

        The rows come detached from the session: the clock changes different columns of each, which
        the ORM would write back one UPDATE a case; :meth:`save_clock` writes them in one statement."""
        result = await self._session.scalars(
            select(FollowupCase)
            .where(FollowupCase.next_check_at.is_not(None), FollowupCase.next_check_at <= now)
            .order_by(FollowupCase.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        cases = result.all()
        for case in cases:
            self._session.expunge(case)
        return cases

    async def save_clock(self, cases: Sequence[FollowupCase]) -> None:
        """What the SLA clock changed on ``cases`` (from :meth:`clock_due`): one executemany UPDATE."""
        if not cases:
            return
        await self._session.execute(
            update(FollowupCase),
            [
                {
                    "id": case.id,
                    "breached_at": case.breached_at,
                    "resolution_breached_at": case.resolution_breached_at,
                    "sla_done": case.sla_done,
                    "next_check_at": case.next_check_at,
                    "updated_at": case.updated_at,
                }
                for case in cases
            ],
        )

    async def clock_queue(self, now: datetime) -> Due:
        """The cases whose next SLA step is due: since when the oldest waits, and how many."""
        oldest, count = (
            await self._session.execute(
                select(func.min(FollowupCase.next_check_at), func.count()).where(
                    FollowupCase.next_check_at.is_not(None), FollowupCase.next_check_at <= now
                )
            )
        ).one()
        return Due(oldest, int(count))

    async def unresolved_cases(self, tenant_id: uuid.UUID) -> Sequence[FollowupCase]:
        """The tenant's open and contacted cases, soonest due first (the daily digest)."""
        result = await self._session.scalars(
            select(FollowupCase)
            .where(FollowupCase.tenant_id == tenant_id, FollowupCase.status != "resolved")
            .order_by(FollowupCase.due_at)
        )
        return result.all()

    async def tenants_with_people(self) -> Sequence[uuid.UUID]:
        result = await self._session.scalars(select(User.tenant_id).where(User.active).distinct())
        return result.all()

    async def recoveries_due(self, now: datetime, limit: int) -> Sequence[FollowupCase]:
        """Resolved cases whose recovery survey is due and not requested yet, locked (SKIP LOCKED)."""
        result = await self._session.scalars(
            select(FollowupCase)
            .where(
                FollowupCase.recovery_due_at.is_not(None),
                FollowupCase.recovery_requested_at.is_(None),
                FollowupCase.recovery_due_at <= now,
                FollowupCase.status == "resolved",
            )
            .order_by(FollowupCase.recovery_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return result.all()

    async def recovery_queue(self, now: datetime) -> Due:
        oldest, count = (
            await self._session.execute(
                select(func.min(FollowupCase.recovery_due_at), func.count()).where(
                    FollowupCase.recovery_due_at.is_not(None),
                    FollowupCase.recovery_requested_at.is_(None),
                    FollowupCase.recovery_due_at <= now,
                )
            )
        ).one()
        return Due(oldest, int(count))

    async def webhook_urls(self, team_ids: Iterable[uuid.UUID]) -> dict[tuple[str, str], str]:
        """(team id, channel) -> the team's webhook URL, for the teams that still have one."""
        rows = await self._session.execute(
            select(Team.id, Team.slack_webhook_url, Team.teams_webhook_url).where(Team.id.in_(list(team_ids)))
        )
        urls: dict[tuple[str, str], str] = {}
        for row in rows:
            if row.slack_webhook_url:
                urls[(str(row.id), "slack")] = row.slack_webhook_url
            if row.teams_webhook_url:
                urls[(str(row.id), "teams")] = row.teams_webhook_url
        return urls

    async def add_case_events(self, events: Sequence[CaseEvent]) -> None:
        """Append to cases' timelines, one statement per few thousand lines; a step already recorded
        (same dedup key) is not recorded twice. In a batch of answers, with the batch's others at
        its end."""
        if self._batch is not None:
            self._batch.case_events.extend(events)
            return
        await self._insert_case_events(events)

    async def _insert_case_events(self, events: Sequence[CaseEvent]) -> None:
        if not events:
            return
        rows = [_given_columns(event) for event in events]
        # Parameters, not a VALUES clause of every row: compiled once (see queue_notifications).
        await self._session.execute(
            pg_insert(_CASE_EVENTS).on_conflict_do_nothing(
                index_elements=[_CASE_EVENTS.c.case_id, _CASE_EVENTS.c.dedup_key]
            ),
            rows,
        )

    async def claim_notifications(
        self, limit: int, lease: timedelta, *, channels: Sequence[str] = ("email",)
    ) -> Sequence[Notification]:
        """Claim a batch of due notifications for ``lease``: each spends an attempt and is not due
        again until the lease is over, so the claim can be committed before the emails are sent. A
        notifier that dies before it records the outcome leaves them to be sent again when the lease
        runs out.

        Due by the database's clock, the one that stamped them when they were queued. ``SKIP LOCKED``
        lets several notifiers claim side by side without waiting on each other."""
        due = (
            select(Notification.id)
            .where(
                Notification.sent_at.is_(None),
                Notification.failed_at.is_(None),
                Notification.next_attempt_at <= func.now(),
                Notification.channel.in_(list(channels)),
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self._session.scalars(
            update(Notification)
            .where(Notification.id.in_(due.scalar_subquery()))
            .values(attempts=Notification.attempts + 1, next_attempt_at=func.now() + lease)
            .returning(Notification)
            .execution_options(synchronize_session=False)
        )
        return sorted(result.all(), key=lambda notification: notification.id)

    async def record_sent(self, sent: Sequence[NotificationSent]) -> None:
        """The emails the server accepted, in one statement.

        No fence on who holds the claim: the server accepted the message, so it was sent, whoever
        claimed it since, and even if it was withdrawn while it was on its way."""
        if not sent:
            return
        batch = values(
            column("id", BigInteger), column("sent_at", DateTime(timezone=True)), name="sent"
        ).data(list(sent))
        await self._session.execute(
            update(_NOTIFICATIONS)
            .where(_NOTIFICATIONS.c.id == batch.c.id, _NOTIFICATIONS.c.sent_at.is_(None))
            .values(sent_at=batch.c.sent_at, failed_at=None, last_error=None)
        )

    async def record_unsent(self, unsent: Sequence[NotificationUnsent]) -> None:
        """The emails the server did not take, in one statement: each either waits for its next
        attempt or has failed for good.

        Only while our claim stands: a notification claimed again since (its attempts moved on),
        sent, or withdrawn keeps the newer state."""
        if not unsent:
            return
        batch = values(
            column("id", BigInteger),
            column("attempts", Integer),
            column("next_attempt_at", DateTime(timezone=True)),
            column("failed_at", DateTime(timezone=True)),
            column("error", Text),
            name="unsent",
        ).data(list(unsent))
        await self._session.execute(
            update(_NOTIFICATIONS)
            .where(
                _NOTIFICATIONS.c.id == batch.c.id,
                _NOTIFICATIONS.c.attempts == batch.c.attempts,
                _NOTIFICATIONS.c.sent_at.is_(None),
                _NOTIFICATIONS.c.failed_at.is_(None),
            )
            .values(
                # A NULL in VALUES is text to Postgres; say what it is.
                next_attempt_at=func.coalesce(
                    sql_cast(batch.c.next_attempt_at, DateTime(timezone=True)),
                    _NOTIFICATIONS.c.next_attempt_at,
                ),
                failed_at=sql_cast(batch.c.failed_at, DateTime(timezone=True)),
                last_error=batch.c.error,
            )
        )

    async def notification_queue(self, *, channels: Sequence[str] = ("email",)) -> Due:
        """When the longest-waiting notification that is due became due, by the database's clock,
        and how many are due."""
        oldest, count = (
            await self._session.execute(
                select(func.min(Notification.next_attempt_at), func.count()).where(
                    Notification.sent_at.is_(None),
                    Notification.failed_at.is_(None),
                    Notification.next_attempt_at <= func.now(),
                    Notification.channel.in_(list(channels)),
                )
            )
        ).one()
        return Due(oldest, int(count))

    # The case desk

    async def team_ids_of(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> tuple[uuid.UUID, ...]:
        result = await self._session.scalars(
            select(TeamMember.team_id).where(TeamMember.tenant_id == tenant_id, TeamMember.user_id == user_id)
        )
        return tuple(result.all())

    async def tenant_user(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
        """A user of this tenant (another tenant's id is as unknown as a made-up one)."""
        return await self._session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))

    async def tenant_team(self, tenant_id: uuid.UUID, team_id: uuid.UUID) -> Team | None:
        return await self._session.scalar(select(Team).where(Team.id == team_id, Team.tenant_id == tenant_id))

    async def desk_choices(self, tenant_id: uuid.UUID) -> tuple[list[Choice], list[Choice]]:
        """The tenant's active users and its teams, by name: whom a case may be assigned to."""
        users = await self._session.execute(
            select(User.id, User.name)
            .where(User.tenant_id == tenant_id, User.active.is_(True))
            .order_by(User.name, User.id)
        )
        teams = await self._session.execute(
            select(Team.id, Team.name).where(Team.tenant_id == tenant_id).order_by(Team.name, Team.id)
        )
        return [Choice(row.id, row.name) for row in users], [Choice(row.id, row.name) for row in teams]

    async def add_case_event(self, event: CaseEvent) -> int:
        """Append to a case's timeline; the new entry's id (timelines are ordered by it)."""
        self._session.add(event)
        await self._session.flush()
        return event.id

    def _desk_select(self, tenant_id: uuid.UUID) -> _DeskSelect:
        # Outer joins within the tenant: one query gives each case with its owner's and team's names.
        return (
            select(FollowupCase, User.name, Team.name)
            .outerjoin(User, (User.id == FollowupCase.assignee_user_id) & (User.tenant_id == tenant_id))
            .outerjoin(Team, (Team.id == FollowupCase.team_id) & (Team.tenant_id == tenant_id))
            .where(FollowupCase.tenant_id == tenant_id)
        )

    async def desk_cases(
        self,
        tenant_id: uuid.UUID,
        *,
        where: CaseFilter,
        scope: Scope,
        after: Cursor | None,
        limit: int,
    ) -> DeskPage:
        """A page of the cases ``scope`` may show that match ``where``, soonest due first (then by
        id), starting after ``after``: one query, keyset-paginated so a page deep in a long list
        costs what the first does."""
        query = _scoped(_filtered(self._desk_select(tenant_id), where), scope)
        if after is not None:
            query = query.where(tuple_(FollowupCase.due_at, FollowupCase.id) > (after.due_at, after.case_id))
        result = await self._session.execute(
            query.order_by(FollowupCase.due_at, FollowupCase.id).limit(limit + 1)
        )
        rows = [DeskRow(case, assignee, team) for case, assignee, team in result.all()]
        return DeskPage(rows=rows[:limit], more=len(rows) > limit)

    async def timelines(self, case_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[CaseEvent]]:
        """The timelines of many cases in one query, each oldest first."""
        found: dict[uuid.UUID, list[CaseEvent]] = {case_id: [] for case_id in case_ids}
        if case_ids:
            result = await self._session.scalars(
                select(CaseEvent)
                .where(CaseEvent.case_id.in_(list(case_ids)))
                .order_by(CaseEvent.case_id, CaseEvent.id)
            )
            for event in result:
                found[event.case_id].append(event)
        return found

    async def case_detail(self, tenant_id: uuid.UUID, case_id: uuid.UUID) -> CaseDetail | None:
        """A case with its owner, team, timeline, and the customer's earlier answers and cases."""
        found = (
            await self._session.execute(self._desk_select(tenant_id).where(FollowupCase.id == case_id))
        ).first()
        if found is None:
            return None
        case, assignee, team = found
        timeline = (await self.timelines([case.id]))[case.id]
        answers = await self._session.scalars(
            select(Answer)
            .where(
                Answer.tenant_id == tenant_id,
                Answer.customer_id == case.customer_id,
                Answer.response_id != case.response_id,
            )
            .order_by(Answer.responded_at.desc(), Answer.response_id)
            .limit(EARLIER_LIMIT)
        )
        cases = await self._session.scalars(
            select(FollowupCase)
            .where(
                FollowupCase.tenant_id == tenant_id,
                FollowupCase.customer_id == case.customer_id,
                FollowupCase.id != case.id,
            )
            .order_by(FollowupCase.opened_at.desc(), FollowupCase.id)
            .limit(EARLIER_LIMIT)
        )
        return CaseDetail(DeskRow(case, assignee, team), timeline, answers.all(), cases.all())

    async def open_case_counts(self, tenant_id: uuid.UUID) -> dict[uuid.UUID, int]:
        """How many cases each user has that are not resolved yet (users with none are left out)."""
        result = await self._session.execute(
            select(FollowupCase.assignee_user_id, func.count())
            .where(
                FollowupCase.tenant_id == tenant_id,
                FollowupCase.assignee_user_id.is_not(None),
                FollowupCase.status != "resolved",
            )
            .group_by(FollowupCase.assignee_user_id)
        )
        return {user_id: int(count) for user_id, count in result.all() if user_id is not None}

    # People, teams and sign-in

    async def tenant_by_name_or_id(self, reference: str) -> TenantRef | None:
        """A tenant of alerting's copy of the registry, by its name or its id."""
        table = COMMON.tenants
        condition = table.c.name == reference
        with contextlib.suppress(ValueError):
            condition = or_(condition, table.c.id == uuid.UUID(reference))
        row = (await self._session.execute(select(table.c.id, table.c.name).where(condition))).first()
        return TenantRef(row.id, row.name) if row is not None else None

    async def tenant_display_names(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """How each tenant is named to people: its display name, else its name."""
        table = COMMON.tenants
        rows = await self._session.execute(
            select(table.c.id, func.coalesce(table.c.display_name, table.c.name)).where(
                table.c.id.in_(list(tenant_ids))
            )
        )
        return {row[0]: row[1] for row in rows}

    async def insert_user(self, user: User) -> bool:
        """Add a user unless the tenant has one with the address; true when this call added it."""
        created = await self._session.scalar(
            pg_insert(User)
            .values(**_given_columns(user))
            .on_conflict_do_nothing(constraint="uq_users_tenant_email")
            .returning(User.id)
        )
        return created is not None

    async def get_user(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
    ) -> User | None:
        query = select(User).where(User.id == user_id, User.tenant_id == tenant_id)
        return await self._session.scalar(query.with_for_update() if for_update else query)

    async def user_by_email(self, tenant_id: uuid.UUID, email: str) -> User | None:
        return await self._session.scalar(
            select(User).where(User.tenant_id == tenant_id, User.email == email)
        )

    async def list_users(
        self, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
    ) -> Sequence[User]:
        """A page of the tenant's users in id order, those after the cursor ``after``."""
        query = select(User).where(User.tenant_id == tenant_id)
        if after is not None:
            query = query.where(User.id > after)
        return (await self._session.scalars(query.order_by(User.id).limit(limit))).all()

    async def active_users_with_email(self, email: str) -> Sequence[User]:
        """Every active user with the address, in whichever tenant: one person may work for several."""
        query = select(User).where(User.email == email, User.active.is_(True)).order_by(User.tenant_id)
        return (await self._session.scalars(query)).all()

    async def links_sent_since(self, user_id: uuid.UUID, since: datetime) -> int:
        count = await self._session.scalar(
            select(func.count())
            .select_from(MagicLink)
            .where(MagicLink.user_id == user_id, MagicLink.created_at > since)
        )
        return int(count or 0)

    async def insert_magic_link(self, link: MagicLink) -> None:
        await self._session.execute(pg_insert(MagicLink).values(**_given_columns(link)))

    async def use_magic_link(self, token_hash: str, now: datetime) -> MagicLinkUse | None:
        """Mark a link used, in one statement, if it is unused and unexpired: of two concurrent
        uses, exactly one gets the row back."""
        row = (
            await self._session.execute(
                update(MagicLink)
                .where(
                    MagicLink.token_hash == token_hash,
                    MagicLink.used_at.is_(None),
                    MagicLink.expires_at > now,
                )
                .values(used_at=now)
                .returning(MagicLink.tenant_id, MagicLink.user_id, MagicLink.next_path)
            )
        ).first()
        return MagicLinkUse(row.tenant_id, row.user_id, row.next_path) if row is not None else None

    async def end_sessions_of_user(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID, now: datetime
    ) -> list[str]:
        """End every open session of the user; the ids of those this call ended."""
        result = await self._session.execute(
            update(SESSIONS)
            .where(
                SESSIONS.c.tenant_id == tenant_id,
                SESSIONS.c.user_id == user_id,
                SESSIONS.c.ended_at.is_(None),
            )
            .values(ended_at=now)
            .returning(SESSIONS.c.id)
        )
        return [row.id for row in result]

    async def end_session(self, tenant_id: uuid.UUID, session_id: str, now: datetime) -> bool:
        """End one open session; false when it had ended already."""
        ended = await self._session.scalar(
            update(SESSIONS)
            .where(
                SESSIONS.c.id == session_id, SESSIONS.c.tenant_id == tenant_id, SESSIONS.c.ended_at.is_(None)
            )
            .values(ended_at=now)
            .returning(SESSIONS.c.id)
        )
        return ended is not None

    async def insert_team(self, team: Team) -> bool:
        """Add a team unless the tenant has one of the name; true when this call added it."""
        created = await self._session.scalar(
            pg_insert(Team)
            .values(**_given_columns(team))
            .on_conflict_do_nothing(constraint="uq_teams_tenant_name")
            .returning(Team.id)
        )
        return created is not None

    async def get_team(
        self, tenant_id: uuid.UUID, team_id: uuid.UUID, *, for_update: bool = False
    ) -> Team | None:
        query = select(Team).where(Team.id == team_id, Team.tenant_id == tenant_id)
        return await self._session.scalar(query.with_for_update() if for_update else query)

    async def team_by_name(self, tenant_id: uuid.UUID, name: str) -> Team | None:
        return await self._session.scalar(select(Team).where(Team.tenant_id == tenant_id, Team.name == name))

    async def list_teams(
        self, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
    ) -> Sequence[Team]:
        query = select(Team).where(Team.tenant_id == tenant_id)
        if after is not None:
            query = query.where(Team.id > after)
        return (await self._session.scalars(query.order_by(Team.id).limit(limit))).all()

    async def team_name_taken(self, tenant_id: uuid.UUID, name: str, other_than: uuid.UUID) -> bool:
        found = await self._session.scalar(
            select(Team.id).where(Team.tenant_id == tenant_id, Team.name == name, Team.id != other_than)
        )
        return found is not None

    async def delete_team(self, tenant_id: uuid.UUID, team_id: uuid.UUID) -> bool:
        deleted = await self._session.scalar(
            delete(Team).where(Team.id == team_id, Team.tenant_id == tenant_id).returning(Team.id)
        )
        return deleted is not None

    async def team_members(self, team_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each team's members, in the order they joined (one query for all the teams)."""
        rows = await self._session.execute(
            select(TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.team_id.in_(list(team_ids)))
            .order_by(TeamMember.joined_at, TeamMember.user_id)
        )
        members: dict[uuid.UUID, list[uuid.UUID]] = {team_id: [] for team_id in team_ids}
        for team_id, user_id in rows:
            members[team_id].append(user_id)
        return members

    async def add_member(self, member: TeamMember) -> bool:
        """Add a member unless they are one already; true when this call added them."""
        added = await self._session.scalar(
            pg_insert(TeamMember)
            .values(**_given_columns(member))
            .on_conflict_do_nothing(index_elements=[TeamMember.team_id, TeamMember.user_id])
            .returning(TeamMember.user_id)
        )
        return added is not None

    async def remove_member(self, tenant_id: uuid.UUID, team_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        removed = await self._session.scalar(
            delete(TeamMember)
            .where(
                TeamMember.team_id == team_id,
                TeamMember.user_id == user_id,
                TeamMember.tenant_id == tenant_id,
            )
            .returning(TeamMember.user_id)
        )
        return removed is not None


#: How many of a customer's earlier answers and cases a case shows.
EARLIER_LIMIT = 20

#: A case with its owner's and team's names (null through the outer joins, whatever the type says).
_DeskSelect = Select[FollowupCase, str, str]


_RETAIN_ANSWER_COMMENTS = retention_update(
    schema="alerting",
    table="answers",
    key="response_id",
    time_column="responded_at",
    months="retention_comments_months",
    pending="r.comment IS NOT NULL",
    changes="comment = NULL",
)
_RETAIN_CASE_COMMENTS = retention_update(
    schema="alerting",
    table="followup_cases",
    key="id",
    time_column="opened_at",
    months="retention_comments_months",
    pending="r.comment IS NOT NULL",
    changes="comment = NULL",
)

# Only emails that are done with: one still to be sent keeps its text.
_RETAIN_NOTIFICATION_TEXT = retention_update(
    schema="alerting",
    table="notifications",
    key="id",
    time_column="created_at",
    months="retention_comments_months",
    pending="r.body <> '' AND (r.sent_at IS NOT NULL OR r.failed_at IS NOT NULL)",
    changes="body = ''",
)


def _filtered(query: _DeskSelect, where: CaseFilter) -> _DeskSelect:
    if where.status is not None:
        query = query.where(FollowupCase.status == where.status.value)
    if where.touchpoint is not None:
        query = query.where(FollowupCase.touchpoint == where.touchpoint)
    if where.band is not None:
        lowest, highest = BAND_SCORES[where.band]
        query = query.where(FollowupCase.score.between(lowest, highest))
    if where.assignee == UNASSIGNED:
        query = query.where(FollowupCase.assignee_user_id.is_(None))
    elif isinstance(where.assignee, uuid.UUID):
        query = query.where(FollowupCase.assignee_user_id == where.assignee)
    if where.team_id is not None:
        query = query.where(FollowupCase.team_id == where.team_id)
    if where.breached is not None:
        breached = FollowupCase.breached_at
        query = query.where(breached.is_not(None) if where.breached else breached.is_(None))
    return query


def _scoped(query: _DeskSelect, scope: Scope) -> _DeskSelect:
    if scope.everything:
        return query
    mine = FollowupCase.assignee_user_id == scope.user_id if scope.user_id is not None else false()
    teams = FollowupCase.team_id.in_(scope.team_ids) if scope.team_ids else false()
    return query.where(or_(mine, teams))
