"""The alerting handlers on the in-memory repository: what an answer does to its follow-up case,
what the case API's change does, and the SLA check, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common.events import FOLLOWUP_OPENED, FOLLOWUP_UPDATED, Event
from libs.common.kafka import RejectEvent
from services.alerting.domain.cases import CaseStatus, InvalidTransition
from services.alerting.domain.notices import NoticeKind
from services.alerting.domain.revisions import Resolution
from services.alerting.handlers import (
    CaseNotFound,
    case_id_for,
    record_answer,
    refresh_open_cases,
    run_clock,
    update_case,
)
from services.alerting.repository import AlertingRepository
from tests.support.alerting_fakes import AnswerHistory, FakeAlertingRepository
from tests.support.fakes import FakeUnitOfWork

TENANT = uuid.UUID("3f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")
OWNER = "owner@acme.example"
# A Monday at opening time, in the business hours a new tenant gets (Mon-Fri 09-17 UTC).
RESPONDED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = RESPONDED_AT + timedelta(hours=1)

Uow = FakeUnitOfWork[AlertingRepository]


def _answer(*scores: int, comment: str | None = None) -> AnswerHistory:
    return AnswerHistory(
        tenant_id=TENANT,
        response_id=uuid.uuid4(),
        customer_id=f"customer-{uuid.uuid4().hex[:8]}",
        scores=scores,
        responded_at=RESPONDED_AT,
        comment=comment,
    )


def _service(owner: str | None = OWNER) -> tuple[FakeAlertingRepository, Uow]:
    repository = FakeAlertingRepository({TENANT: owner})
    return repository, FakeUnitOfWork(repository)


async def _handle(uow: Uow, event: Event[Any], now: datetime = NOW, **options: Any) -> None:
    async with uow:
        await record_answer(event, uow, now=now, **options)
        await uow.commit()


async def test_a_detractor_answer_opens_a_case_for_the_owner_and_queues_the_email() -> None:
    repository, uow = _service()
    answer = _answer(3, comment="Two weeks late.")

    await _handle(uow, answer.version(1), notify_delay=timedelta(minutes=2))

    case = repository.cases[case_id_for(answer.response_id)]
    assert (case.status, case.score, case.owner_email) == (CaseStatus.OPEN.value, 3, OWNER)
    assert case.customer_email == f"{answer.customer_id}@shoppers.example"
    # Score 3 is urgent: first contact within 4 business hours, by 13:00 the same Monday.
    assert (case.priority, case.due_at) == ("urgent", RESPONDED_AT + timedelta(hours=4))
    assert [line.kind for line in repository.timeline] == ["opened", "routed"]
    assert "owner email" in (case.routing_reason or "")
    [opened] = uow.of_type(FOLLOWUP_OPENED)
    assert opened.envelope.subject == str(case.id)
    notification = repository.notifications[(case.id, NoticeKind.CASE_OPENED.value)]
    assert notification.recipient == OWNER
    assert "Two weeks late." in notification.body
    assert repository.notification_delays[(case.id, NoticeKind.CASE_OPENED.value)] == timedelta(minutes=2)


async def test_a_promoter_answer_is_held_but_opens_no_case() -> None:
    repository, uow = _service()
    answer = _answer(9)

    await _handle(uow, answer.version(1))

    assert repository.answers[answer.response_id].score == 9
    assert repository.cases == {}
    assert uow.events == []


async def test_a_detractor_of_a_tenant_without_an_owner_gets_a_case_and_no_email() -> None:
    repository, uow = _service(owner=None)

    await _handle(uow, _answer(0).version(1))

    [case] = repository.cases.values()
    assert case.owner_email is None
    assert repository.notifications == {}
    assert len(uow.of_type(FOLLOWUP_OPENED)) == 1


async def test_an_answer_of_a_tenant_not_known_is_rejected_and_leaves_nothing_to_send() -> None:
    repository = FakeAlertingRepository({})
    uow: Uow = FakeUnitOfWork(repository)

    with pytest.raises(RejectEvent, match="unknown tenant"):
        await _handle(uow, _answer(2).version(1))

    assert repository.cases == {}
    assert uow.events == []


async def test_a_score_changed_away_from_detractor_resolves_the_case_and_withdraws_the_email() -> None:
    repository, uow = _service()
    answer = _answer(2, 9)
    await _handle(uow, answer.version(1))

    await _handle(uow, answer.version(2), now=NOW + timedelta(minutes=5))

    case = repository.cases[case_id_for(answer.response_id)]
    assert (case.status, case.resolution, case.score) == (
        CaseStatus.RESOLVED.value,
        Resolution.SCORE_CHANGED.value,
        9,
    )
    assert case.resolved_at == NOW + timedelta(minutes=5)
    notification = repository.notifications[(case.id, NoticeKind.CASE_OPENED.value)]
    assert notification.failed_at is not None
    assert "changed the score" in (notification.last_error or "")
    [updated] = uow.of_type(FOLLOWUP_UPDATED)
    assert updated.envelope.subject == str(case.id)


async def test_back_to_a_detractor_score_reopens_the_same_case_on_a_fresh_clock() -> None:
    repository, uow = _service()
    answer = _answer(2, 9, 4)
    for revision in (1, 2, 3):
        await _handle(uow, answer.version(revision))

    [case] = repository.cases.values()
    assert (case.status, case.resolution, case.score) == (CaseStatus.OPEN.value, None, 4)
    # The third version was given two minutes after the first: its SLA (urgent, 4 business hours)
    # runs from then.
    assert case.due_at == RESPONDED_AT + timedelta(minutes=2) + timedelta(hours=4)
    assert len(uow.of_type(FOLLOWUP_OPENED)) == 1
    assert len(uow.of_type(FOLLOWUP_UPDATED)) == 2


async def test_a_later_comment_rewrites_the_email_still_waiting() -> None:
    repository, uow = _service()
    answer = _answer(1)
    await _handle(uow, answer.version(1))
    with_comment = AnswerHistory(
        tenant_id=TENANT,
        response_id=answer.response_id,
        customer_id=answer.customer_id,
        scores=(1, 1),
        responded_at=RESPONDED_AT,
        comment="Nobody answered the phone.",
    )

    await _handle(uow, with_comment.version(2))

    case = repository.cases[case_id_for(answer.response_id)]
    assert case.comment == "Nobody answered the phone."
    waiting = repository.notifications[(case.id, NoticeKind.CASE_OPENED.value)]
    assert "Nobody answered the phone." in waiting.body
    assert uow.of_type(FOLLOWUP_UPDATED) == []


async def test_a_repeat_or_an_older_version_changes_nothing_but_the_missing_contact() -> None:
    repository, uow = _service()
    answer = _answer(8, 3)
    # The update overtook the first answer: the case opens without the customer's address.
    await _handle(uow, answer.version(2))
    case = repository.cases[case_id_for(answer.response_id)]
    assert case.customer_email is None

    await _handle(uow, answer.version(1))
    await _handle(uow, answer.version(2))

    assert (case.score, case.status) == (3, CaseStatus.OPEN.value)
    assert case.customer_email == f"{answer.customer_id}@shoppers.example"
    assert repository.answers[answer.response_id].revision == 2
    assert len(uow.of_type(FOLLOWUP_OPENED)) == 1
    assert len(uow.events) == 1


async def test_the_case_api_moves_a_case_on_and_says_so() -> None:
    _, uow = _service()
    answer = _answer(0)
    await _handle(uow, answer.version(1))
    case_id = case_id_for(answer.response_id)

    async with uow:
        case = await update_case(
            uow, tenant_id=TENANT, case_id=case_id, status=CaseStatus.CONTACTED, note="Called.", now=NOW
        )
        await uow.commit()

    assert (case.status, case.contacted_at, case.note) == (CaseStatus.CONTACTED.value, NOW, "Called.")
    assert len(uow.of_type(FOLLOWUP_UPDATED)) == 1
    async with uow:
        with pytest.raises(InvalidTransition):
            await update_case(
                uow, tenant_id=TENANT, case_id=case_id, status=CaseStatus.CONTACTED, note=None, now=NOW
            )
        with pytest.raises(CaseNotFound):
            await update_case(
                uow, tenant_id=uuid.uuid4(), case_id=case_id, status=CaseStatus.RESOLVED, note=None, now=NOW
            )


async def test_the_owner_is_reminded_at_three_quarters_of_the_time_and_a_contact_stops_the_clock() -> None:
    repository, uow = _service()
    answer = _answer(2)  # urgent: first contact within 4 business hours, by 13:00
    await _handle(uow, answer.version(1))
    case = repository.cases[case_id_for(answer.response_id)]
    # Not before three quarters of the time (12:00): nothing to do yet.
    async with uow:
        assert await run_clock(uow, RESPONDED_AT + timedelta(hours=2, minutes=59)) == 0
        await uow.commit()
    async with uow:
        assert await run_clock(uow, RESPONDED_AT + timedelta(hours=3)) == 1
        await uow.commit()
    reminder = repository.notifications[(case.id, NoticeKind.SLA_REMINDER.value)]
    assert reminder.recipient == OWNER and "by 2026-03-02 13:00 UTC" in reminder.subject
    assert case.sla_done == ["reminder"]
    async with uow:
        await update_case(
            uow,
            tenant_id=TENANT,
            case_id=case.id,
            status=CaseStatus.CONTACTED,
            note="Called",
            now=RESPONDED_AT + timedelta(hours=3, minutes=10),
        )
        await uow.commit()
    # Contacted in time: no breach and no escalation, however late the clock runs.
    async with uow:
        await run_clock(uow, RESPONDED_AT + timedelta(days=30))
        await uow.commit()
    assert case.breached_at is None
    assert "breach" not in case.sla_done and "escalate_team_lead" not in case.sla_done


async def test_a_case_nobody_contacted_in_time_is_stamped_and_escalated_once() -> None:
    repository, uow = _service()
    late, contacted = _answer(1), _answer(2)
    for answer in (late, contacted):
        await _handle(uow, answer.version(1))
    async with uow:
        await update_case(
            uow,
            tenant_id=TENANT,
            case_id=case_id_for(contacted.response_id),
            status=CaseStatus.CONTACTED,
            note=None,
            now=NOW,
        )
        await uow.commit()
    # Score 1 is urgent: due by 13:00; by 13:01 the breach and the escalation are due (the
    # reminder at 12:00 no longer is: time has run out).
    check_at = RESPONDED_AT + timedelta(hours=4, minutes=1)

    for minutes in (0, 5):
        async with uow:
            await run_clock(uow, check_at + timedelta(minutes=minutes))
            await uow.commit()

    case = repository.cases[case_id_for(late.response_id)]
    assert case.breached_at == check_at
    assert set(case.sla_done) == {"breach", "escalate_team_lead"}
    assert repository.cases[case_id_for(contacted.response_id)].breached_at is None
    breach = repository.notifications[(case.id, NoticeKind.CASE_BREACHED.value)]
    assert breach.recipient == OWNER
    escalated = [line for line in repository.timeline if line.case_id == case.id and line.kind == "escalated"]
    assert [line.body for line in escalated] == ["no team lead to tell"]
    assert [event.envelope.subject for event in uow.of_type(FOLLOWUP_UPDATED)] == [
        str(case_id_for(contacted.response_id)),
        str(case.id),
    ]
    async with uow:
        assert await refresh_open_cases(uow) == 1
