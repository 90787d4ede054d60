"""An in-memory :class:`AlertingRepository`, and the answer events the survey sends, for unit
tests that drive the alerting handlers through :class:`tests.support.fakes.FakeUnitOfWork`.

It overrides every query the answer handler (``record_answer``), the case API's handler
(``update_case``) and the SLA clock (``run_clock``, ``refresh_open_cases``) make, with the
semantics the database gives them: one held answer and one case per response (the unique keys
decide, as ``ON CONFLICT DO NOTHING`` does), one notification per case and kind, and pending means
neither sent nor failed. Rows are kept as the ORM objects the real queries return, so a handler
changes them the way it changes loaded rows. Changes apply at once: there is no rollback, so a test
commits every unit of work it opens. A query it does not fake fails loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TypeVar, cast

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.events import (
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    Envelope,
    Event,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.alerting.domain.policy import DEFAULT_DESK_POLICY, DeskPolicy
from services.alerting.models import (
    Answer,
    Base,
    CaseEvent,
    FollowupCase,
    Notification,
    RoutingRule,
    Team,
    User,
)
from services.alerting.repository import AlertingRepository, CaseNotice, People, SlaCount, TenantInfo

Row = TypeVar("Row", bound=Base)


class _NoDatabase:
    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"FakeAlertingRepository does not fake this query (session.{name})")


def _copy(row: Row) -> Row:
    """What the database would keep of a new row: its columns' values, not the object handed in."""
    columns = {attribute.key: getattr(row, attribute.key) for attribute in inspect(row).mapper.column_attrs}
    return type(row)(**columns)


class FakeAlertingRepository(AlertingRepository):
    def __init__(
        self,
        tenants: dict[uuid.UUID, str | None] | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(cast(AsyncSession, _NoDatabase()))
        #: Known tenants and their owner's email (``None``: nobody to tell).
        self.tenants: dict[uuid.UUID, str | None] = dict(tenants or {})
        self.answers: dict[uuid.UUID, Answer] = {}
        self.cases: dict[uuid.UUID, FollowupCase] = {}
        self.notifications: dict[tuple[uuid.UUID, str], Notification] = {}
        #: The delay each notification was queued with (the database's clock is not faked).
        self.notification_delays: dict[tuple[uuid.UUID, str], timedelta | None] = {}
        #: Per tenant: its desk policy (default: what a new tenant gets), people, routing rules.
        self.policies: dict[uuid.UUID, DeskPolicy] = {}
        self.directory: dict[uuid.UUID, People] = {}
        self.rules: dict[uuid.UUID, list[RoutingRule]] = {}
        self._clock = clock
        self._next_notification_id = 1
        # The case desk: timelines, people and teams, and each tenant's desk settings.
        self.case_events: list[CaseEvent] = []
        self.users: dict[uuid.UUID, User] = {}
        self.teams: dict[uuid.UUID, Team] = {}
        self.memberships: set[tuple[uuid.UUID, uuid.UUID]] = set()

    async def add_case_event(self, event: CaseEvent) -> int:
        event.id = len(self.case_events) + 1
        self.case_events.append(event)
        return event.id

    async def team_ids_of(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> tuple[uuid.UUID, ...]:
        return tuple(
            team_id
            for team_id, member in sorted(self.memberships)
            if member == user_id and self.teams[team_id].tenant_id == tenant_id
        )

    async def tenant_user(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
        user = self.users.get(user_id)
        return user if user is not None and user.tenant_id == tenant_id else None

    async def tenant_team(self, tenant_id: uuid.UUID, team_id: uuid.UUID) -> Team | None:
        team = self.teams.get(team_id)
        return team if team is not None and team.tenant_id == tenant_id else None

    async def tenant_info(self, tenant_id: uuid.UUID) -> TenantInfo:
        known = tenant_id in self.tenants
        return TenantInfo(known=known, owner_email=self.tenants.get(tenant_id))

    async def owner_emails(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        return {tenant_id: self.tenants[tenant_id] for tenant_id in tenant_ids if tenant_id in self.tenants}

    async def prefetch_answers(self, answers: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Nothing to read ahead: the fake answers every query from memory."""

    async def lock_answer(self, response_id: uuid.UUID) -> Answer | None:
        return self.answers.get(response_id)

    async def insert_answer(self, answer: Answer) -> bool:
        if answer.response_id in self.answers:
            return False
        self.answers[answer.response_id] = _copy(answer)
        return True

    async def case_of_response(self, tenant_id: uuid.UUID, response_id: uuid.UUID) -> FollowupCase | None:
        return next(
            (c for c in self.cases.values() if c.response_id == response_id and c.tenant_id == tenant_id),
            None,
        )

    async def insert_case(self, case: FollowupCase) -> bool:
        if case.id in self.cases or any(c.response_id == case.response_id for c in self.cases.values()):
            return False
        self.cases[case.id] = _copy(case)
        return True

    async def get_case(
        self, tenant_id: uuid.UUID, case_id: uuid.UUID, *, for_update: bool = False
    ) -> FollowupCase | None:
        case = self.cases.get(case_id)
        return case if case is not None and case.tenant_id == tenant_id else None

    async def desk_policies(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DeskPolicy]:
        return {tenant_id: self.policies.get(tenant_id, DEFAULT_DESK_POLICY) for tenant_id in tenant_ids}

    async def people(self, tenant_id: uuid.UUID) -> People:
        return self.directory.setdefault(tenant_id, People(users={}, teams={}, members=[], open_cases={}))

    async def routing_rules(self, tenant_id: uuid.UUID) -> Sequence[RoutingRule]:
        return self.rules.get(tenant_id, [])

    async def advance_team_cursor(self, team_id: uuid.UUID, cursor: int) -> None:
        for people in self.directory.values():
            if team_id in people.teams:
                people.teams[team_id].cursor = cursor

    @property
    def timeline(self) -> list[CaseEvent]:
        """Every case's timeline lines, in the order written."""
        return self.case_events

    async def add_case_events(self, events: Sequence[CaseEvent]) -> None:
        for event in events:
            taken = {
                (line.case_id, line.dedup_key) for line in self.case_events if line.dedup_key is not None
            }
            if event.dedup_key is None or (event.case_id, event.dedup_key) not in taken:
                await self.add_case_event(_copy(event))

    async def save_clock(self, cases: Sequence[FollowupCase]) -> None:
        """The fake hands out the rows it keeps: the clock's changes are in them already."""

    async def clock_due(self, now: datetime, limit: int) -> Sequence[FollowupCase]:
        due = [
            case
            for case in self.cases.values()
            if case.next_check_at is not None and case.next_check_at <= now
        ]
        return sorted(due, key=lambda case: case.next_check_at or now)[:limit]

    async def count_open_cases(self) -> int:
        return sum(1 for case in self.cases.values() if case.status == "open")

    async def sla_counts(self, now: datetime, soon: datetime) -> list[SlaCount]:
        counts: dict[str, list[int]] = {}
        for case in self.cases.values():
            if case.status == "resolved":
                continue
            row = counts.setdefault(case.priority, [0, 0, 0])
            late = (case.status == "open" and case.due_at <= now) or (
                case.resolution_due_at is not None and case.resolution_due_at <= now
            )
            coming = (case.status == "open" and case.due_at <= soon) or (
                case.resolution_due_at is not None and case.resolution_due_at <= soon
            )
            row[0] += 1
            row[1] += int(coming and not late)
            row[2] += int(late)
        return [SlaCount(priority, *row) for priority, row in counts.items()]

    async def queue_notifications(
        self, notices: Sequence[CaseNotice], *, after: timedelta | None = None
    ) -> None:
        for queued in notices:
            # The handlers faked here queue only notices about one case; digests are not faked.
            assert queued.case_id is not None, "FakeAlertingRepository does not fake digests"
            key = (queued.case_id, queued.notice.kind.value)
            if key in self.notifications:
                continue
            self.notifications[key] = Notification(
                id=self._next_notification_id,
                tenant_id=queued.tenant_id,
                case_id=queued.case_id,
                kind=queued.notice.kind.value,
                recipient=queued.notice.recipient,
                subject=queued.notice.subject,
                body=queued.notice.body,
                attempts=0,
                created_at=self._clock(),
            )
            self.notification_delays[key] = after
            self._next_notification_id += 1

    def _pending(self, case_id: uuid.UUID, kind: str) -> Notification | None:
        notification = self.notifications.get((case_id, kind))
        if notification is None or notification.sent_at is not None or notification.failed_at is not None:
            return None
        return notification

    async def rewrite_pending(
        self, case_id: uuid.UUID, kind: str, *, subject: str, body: str, channel: str = "email"
    ) -> bool:
        notification = self._pending(case_id, kind) if channel == "email" else None
        if notification is None:
            return False
        notification.subject = subject
        notification.body = body
        return True

    async def withdraw_pending(self, case_id: uuid.UUID, kind: str, reason: str) -> bool:
        notification = self._pending(case_id, kind)
        if notification is None:
            return False
        notification.failed_at = self._clock()
        notification.last_error = reason
        return True


@dataclass(frozen=True)
class AnswerHistory:
    """One answer and its versions, as the survey announces them: ``scores[0]`` in
    ``survey.responded`` (revision 1), each later one in a ``survey.response_updated`` one revision
    higher, a minute after the previous."""

    tenant_id: uuid.UUID
    response_id: uuid.UUID
    customer_id: str
    scores: tuple[int, ...]
    responded_at: datetime
    comment: str | None = None

    @property
    def invitation_id(self) -> uuid.UUID:
        return uuid.uuid5(self.response_id, "invitation")

    def events(self) -> list[Event[SurveyResponded] | Event[SurveyResponseUpdated]]:
        return [self.version(revision) for revision in range(1, len(self.scores) + 1)]

    def version(self, revision: int) -> Event[SurveyResponded] | Event[SurveyResponseUpdated]:
        score = self.scores[revision - 1]
        if revision == 1:
            responded = SurveyResponded(
                response_id=self.response_id,
                invitation_id=self.invitation_id,
                customer_id=self.customer_id,
                email=f"{self.customer_id}@shoppers.example",
                name="Jane Doe",
                touchpoint="webshop-purchase",
                score=score,
                comment=self.comment,
                responded_at=self.responded_at,
            )
            return Event(_envelope(SURVEY_RESPONDED, self, responded, str(self.response_id)), responded)
        updated = SurveyResponseUpdated(
            response_id=self.response_id,
            invitation_id=self.invitation_id,
            customer_id=self.customer_id,
            touchpoint="webshop-purchase",
            revision=revision,
            score=score,
            comment=self.comment,
            responded_at=self.responded_at,
            updated_at=self.responded_at + timedelta(minutes=revision - 1),
        )
        event_id = f"{self.response_id}:{revision}"
        return Event(_envelope(SURVEY_RESPONSE_UPDATED, self, updated, event_id), updated)


def _envelope(event_type: str, history: AnswerHistory, data: Contract, event_id: str) -> Envelope:
    # The survey's own ids: a redelivery is the very same event.
    return new_event(
        event_type,
        tenant_id=str(history.tenant_id),
        data=data,
        subject=history.customer_id,
        source="/nps/survey",
        event_id=event_id,
        time=history.responded_at,
    ).envelope
