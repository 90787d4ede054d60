"""Every query the alerting service makes, as :class:`AlertingRepository`, one method a query, over
a unit of work's session (``uow.repository``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
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
    select,
    update,
    values,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.alerting.domain.notices import Notice
from services.alerting.domain.policy import DeskPolicy
from services.alerting.models import (
    COMMON,
    Answer,
    Base,
    CaseEvent,
    DeskSettings,
    FollowupCase,
    Notification,
    RoutingRule,
    Team,
    TeamMember,
    User,
)
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


#: Postgres takes at most this many parameters in one statement.
_MAX_PARAMETERS = 32_767


def _fitting(rows: Sequence[dict[str, object]]) -> Iterator[Sequence[dict[str, object]]]:
    """``rows`` in slices of a multi-row INSERT each statement of which stays under the limit (an
    SLA batch of 1000 cases can have 4000 timeline lines of 9 columns)."""
    size = max(1, _MAX_PARAMETERS // max(len(row) for row in rows))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass(frozen=True, slots=True)
class People:
    """A tenant's people and teams as routing and escalation see them."""

    users: dict[uuid.UUID, User]
    teams: dict[uuid.UUID, Team]
    #: (team, user), each team's members in the order they joined.
    members: list[tuple[uuid.UUID, uuid.UUID]]
    open_cases: dict[uuid.UUID, int]


class AlertingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # Read once per unit of work (a consumer's batch): settings and people change rarely.
        self._policies: dict[uuid.UUID, DeskPolicy] = {}
        self._people: dict[uuid.UUID, People] = {}
        self._rules: dict[uuid.UUID, Sequence[RoutingRule]] = {}

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
        """Queue emails, one statement per few thousand; a case's email of a kind is queued once. Due
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
        for fitting in _fitting(rows):
            await self._session.execute(
                pg_insert(Notification)
                .values(fitting)
                .on_conflict_do_nothing(index_elements=[Notification.dedup_key])
            )

    async def rewrite_pending(
        self, case_id: uuid.UUID, kind: str, *, subject: str, body: str, channel: str = "email"
    ) -> bool:
        """Rewrite a notification not sent yet (the answer changed meanwhile); false if it went out."""
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
            result = await self._session.scalars(
                select(RoutingRule).where(RoutingRule.tenant_id == tenant_id).order_by(RoutingRule.position)
            )
            self._rules[tenant_id] = result.all()
        return self._rules[tenant_id]

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
        cases: what routing and escalation need, three queries, kept for the unit of work."""
        if tenant_id in self._people:
            return self._people[tenant_id]
        users = (await self._session.scalars(select(User).where(User.tenant_id == tenant_id))).all()
        teams = (await self._session.scalars(select(Team).where(Team.tenant_id == tenant_id))).all()
        members = await self._session.execute(
            select(TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.tenant_id == tenant_id)
            .order_by(TeamMember.joined_at, TeamMember.user_id)
        )
        load = await self._session.execute(
            select(FollowupCase.assignee_user_id, func.count())
            .where(
                FollowupCase.tenant_id == tenant_id,
                FollowupCase.status != "resolved",
                FollowupCase.assignee_user_id.is_not(None),
            )
            .group_by(FollowupCase.assignee_user_id)
        )
        found = People(
            users={user.id: user for user in users},
            teams={team.id: team for team in teams},
            members=[(row.team_id, row.user_id) for row in members],
            open_cases={row[0]: row[1] for row in load if row[0] is not None},
        )
        self._people[tenant_id] = found
        return found

    async def advance_team_cursor(self, team_id: uuid.UUID, cursor: int) -> None:
        await self._session.execute(update(Team).where(Team.id == team_id).values(cursor=cursor))

    async def clock_due(self, now: datetime, limit: int) -> Sequence[FollowupCase]:
        """Up to ``limit`` cases whose SLA clock has a step due by ``now``, earliest first, locked;
        SKIP LOCKED lets replicas share the work and leaves a case being changed for the next round."""
        result = await self._session.scalars(
            select(FollowupCase)
            .where(FollowupCase.next_check_at.is_not(None), FollowupCase.next_check_at <= now)
            .order_by(FollowupCase.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return result.all()

    async def oldest_clock_due(self, now: datetime) -> datetime | None:
        return await self._session.scalar(
            select(func.min(FollowupCase.next_check_at)).where(
                FollowupCase.next_check_at.is_not(None), FollowupCase.next_check_at <= now
            )
        )

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

    async def oldest_recovery_due(self, now: datetime) -> datetime | None:
        return await self._session.scalar(
            select(func.min(FollowupCase.recovery_due_at)).where(
                FollowupCase.recovery_due_at.is_not(None),
                FollowupCase.recovery_requested_at.is_(None),
                FollowupCase.recovery_due_at <= now,
            )
        )

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
        (same dedup key) is not recorded twice."""
        if not events:
            return
        rows = [_given_columns(event) for event in events]
        for fitting in _fitting(rows):
            await self._session.execute(
                pg_insert(CaseEvent)
                .values(fitting)
                .on_conflict_do_nothing(index_elements=[CaseEvent.case_id, CaseEvent.dedup_key])
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

    async def oldest_notification_due(self, *, channels: Sequence[str] = ("email",)) -> datetime | None:
        """When the longest-waiting notification that is due became due, by the database's clock."""
        due: datetime | None = await self._session.scalar(
            select(func.min(Notification.next_attempt_at)).where(
                Notification.sent_at.is_(None),
                Notification.failed_at.is_(None),
                Notification.next_attempt_at <= func.now(),
                Notification.channel.in_(list(channels)),
            )
        )
        return due
