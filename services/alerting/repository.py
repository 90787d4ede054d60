"""Every query the alerting service makes, as :class:`AlertingRepository`, one method a query, over
a unit of work's session (``uow.repository``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Table,
    Text,
    column,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
    values,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.alerting.domain.notices import Notice
from services.alerting.models import (
    COMMON,
    SESSIONS,
    Answer,
    Base,
    FollowupCase,
    MagicLink,
    Notification,
    Team,
    TeamMember,
    User,
)


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


def _given_columns(row: Base) -> dict[str, object]:
    """The columns set on a new (transient) row: what its INSERT writes. Those left unset get
    their default, as they would from an INSERT naming only the others."""
    state = inspect(row)
    return {
        attribute.key: getattr(row, attribute.key)
        for attribute in state.mapper.column_attrs
        if attribute.key in state.dict
    }


class AlertingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def tenant_info(self, tenant_id: uuid.UUID) -> TenantInfo:
        table = COMMON.tenants
        row = (
            await self._session.execute(select(table.c.owner_email).where(table.c.id == tenant_id))
        ).first()
        return TenantInfo(known=row is not None, owner_email=row.owner_email if row is not None else None)

    async def lock_answer(self, response_id: uuid.UUID) -> Answer | None:
        """The held version of an answer, locked until the transaction ends."""
        return await self._session.scalar(
            select(Answer).where(Answer.response_id == response_id).with_for_update()
        )

    async def insert_answer(self, answer: Answer) -> bool:
        """Hold a first version of an answer; false when one is held already."""
        return await self._insert_first(answer, Answer.response_id)

    async def case_of_response(self, tenant_id: uuid.UUID, response_id: uuid.UUID) -> FollowupCase | None:
        """The answer's case, locked: a request may be changing it at the same moment."""
        return await self._session.scalar(
            select(FollowupCase)
            .where(FollowupCase.response_id == response_id, FollowupCase.tenant_id == tenant_id)
            .with_for_update()
        )

    async def insert_case(self, case: FollowupCase) -> bool:
        """Insert a case unless its answer has one already; true when this call created it."""
        return await self._insert_first(case, FollowupCase.response_id)

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
        """Queue emails, one statement for the batch; a case's email of a kind is queued once. Due
        now by the database's clock (which the notifier compares against), or ``after`` that."""
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
        if after is not None:
            for row in rows:
                row["next_attempt_at"] = func.now() + after
        await self._session.execute(
            pg_insert(Notification)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[Notification.dedup_key])
        )

    async def rewrite_pending(self, case_id: uuid.UUID, kind: str, *, subject: str, body: str) -> bool:
        """Rewrite a notification not sent yet (the answer changed meanwhile); false if it went out."""
        result = await self._session.execute(
            update(Notification)
            .where(
                Notification.case_id == case_id,
                Notification.kind == kind,
                Notification.sent_at.is_(None),
                Notification.failed_at.is_(None),
            )
            .values(subject=subject, body=body)
            .returning(Notification.id)
        )
        return result.first() is not None

    async def withdraw_pending(self, case_id: uuid.UUID, kind: str, reason: str) -> bool:
        """Never send a notification that no longer holds (the case closed before it went out)."""
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

    async def breach_candidates(
        self, now: datetime, *, statuses: Iterable[str], limit: int
    ) -> Sequence[FollowupCase]:
        """Up to ``limit`` cases that may have breached by ``now``, oldest due first, locked: those in
        a status that can breach, past their due time and not stamped yet. Whether each did is the
        domain's to say (``is_breached``); this only narrows the search to what the index holds.

        SKIP LOCKED lets replicas share the work and leaves a case being changed by a request for the
        next round, when its new status decides whether it breached at all.
        """
        result = await self._session.scalars(
            select(FollowupCase)
            .where(
                FollowupCase.status.in_(list(statuses)),
                FollowupCase.due_at < now,
                FollowupCase.breached_at.is_(None),
            )
            .order_by(FollowupCase.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return result.all()

    async def list_cases(
        self, tenant_id: uuid.UUID, *, status: str | None, breached: bool | None, limit: int
    ) -> Sequence[FollowupCase]:
        query = select(FollowupCase).where(FollowupCase.tenant_id == tenant_id)
        if status is not None:
            query = query.where(FollowupCase.status == status)
        if breached is not None:
            query = query.where(
                FollowupCase.breached_at.is_not(None) if breached else FollowupCase.breached_at.is_(None)
            )
        result = await self._session.scalars(
            query.order_by(FollowupCase.opened_at.desc(), FollowupCase.id.desc()).limit(limit)
        )
        return result.all()

    async def get_case(
        self, tenant_id: uuid.UUID, case_id: uuid.UUID, *, for_update: bool = False
    ) -> FollowupCase | None:
        query = select(FollowupCase).where(FollowupCase.id == case_id, FollowupCase.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        return await self._session.scalar(query)

    async def count_open_cases(self) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(FollowupCase).where(FollowupCase.status == "open")
        )
        return int(count or 0)

    async def claim_notifications(self, limit: int, lease: timedelta) -> Sequence[Notification]:
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

    async def oldest_unbreached_due(self, now: datetime, *, statuses: Iterable[str]) -> datetime | None:
        """The due time of the longest-overdue case the SLA check has not stamped yet."""
        due: datetime | None = await self._session.scalar(
            select(func.min(FollowupCase.due_at)).where(
                FollowupCase.status.in_(list(statuses)),
                FollowupCase.due_at < now,
                FollowupCase.breached_at.is_(None),
            )
        )
        return due

    async def oldest_notification_due(self) -> datetime | None:
        """When the longest-waiting notification that is due became due, by the database's clock."""
        due: datetime | None = await self._session.scalar(
            select(func.min(Notification.next_attempt_at)).where(
                Notification.sent_at.is_(None),
                Notification.failed_at.is_(None),
                Notification.next_attempt_at <= func.now(),
            )
        )
        return due

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
