"""One case per detractor answer, whatever the redeliveries: the real answer handler, driven through
the fake unit of work, with every version of several answers delivered in any order, some of them
several times.

What the handler promises (``services/alerting/domain/revisions.py``): a version is applied only if
its revision is higher than the one held, so a repeat or an older version changes nothing. An answer
gets a case the first time an applied version is a detractor's, and never a second one: a change
away from detractor resolves it, and back to detractor reopens the same case. So the case follows
the newest version, and each case is announced once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.events import FOLLOWUP_OPENED, Event
from services.alerting.domain.cases import CaseStatus, is_detractor
from services.alerting.domain.notices import NoticeKind
from services.alerting.domain.revisions import Resolution
from services.alerting.handlers import record_answer
from services.alerting.repository import AlertingRepository
from tests.support.alerting_fakes import AnswerHistory, FakeAlertingRepository
from tests.support.fakes import FakeUnitOfWork

TENANT = uuid.UUID("7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
OWNER = "owner@acme.example"
RESPONDED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONSUMER = "followups"


@dataclass(frozen=True)
class Delivery:
    history: int
    revision: int


scores = st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=4)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[AnswerHistory], list[Delivery]]:
    """Several answers, each version delivered once or more, in any order; sometimes each answer's
    versions keep their order among themselves (one customer's events share a partition)."""
    histories = [
        AnswerHistory(
            tenant_id=TENANT,
            response_id=uuid.uuid5(TENANT, f"response-{index}"),
            customer_id=f"customer-{index}",
            scores=tuple(draw(scores)),
            responded_at=RESPONDED_AT + timedelta(minutes=index),
        )
        for index in range(draw(st.integers(min_value=1, max_value=5)))
    ]
    sent = [
        Delivery(index, revision)
        for index, history in enumerate(histories)
        for revision in range(1, len(history.scores) + 1)
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    ]
    order = draw(st.permutations(sent))
    if draw(st.booleans()):
        order = _in_order_per_answer(order)
    return histories, order


def _in_order_per_answer(order: list[Delivery]) -> list[Delivery]:
    """The same interleaving of answers, each answer's deliveries sorted by revision."""
    queues: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in sorted(order, key=lambda d: d.revision):
        queues[delivery.history].append(delivery)
    return [queues[delivery.history].pop(0) for delivery in order]


def _applied(histories: list[AnswerHistory], order: list[Delivery]) -> dict[int, list[int]]:
    """The oracle: the scores each answer's applied versions had, in the order they were applied,
    an applied version being one with a revision higher than any delivered before it."""
    held: dict[int, int] = {}
    applied: dict[int, list[int]] = defaultdict(list)
    for delivery in order:
        if delivery.revision > held.get(delivery.history, 0):
            held[delivery.history] = delivery.revision
            applied[delivery.history].append(histories[delivery.history].scores[delivery.revision - 1])
    return applied


async def _deliver(
    histories: list[AnswerHistory], order: list[Delivery], *, claim_first: bool
) -> tuple[FakeAlertingRepository, FakeUnitOfWork[AlertingRepository]]:
    repository = FakeAlertingRepository({TENANT: OWNER})
    uow: FakeUnitOfWork[AlertingRepository] = FakeUnitOfWork(repository)
    events: dict[tuple[int, int], Event[Any]] = {}
    for step, delivery in enumerate(order):
        key = (delivery.history, delivery.revision)
        # A redelivery is the very same event, id and all.
        event = events.setdefault(key, histories[delivery.history].version(delivery.revision))
        async with uow:
            # As the consumer runner does, or the handler on its own, which must hold up alone.
            if not claim_first or await uow.claim(CONSUMER, [event]):
                now = RESPONDED_AT + timedelta(hours=1, seconds=step)
                await record_answer(event, uow, now=now)
            await uow.commit()
    return repository, uow


@settings(max_examples=200, deadline=None)
@given(deliveries(), st.booleans())
def test_one_case_per_detractor_answer_whatever_the_redeliveries(
    delivered: tuple[list[AnswerHistory], list[Delivery]], claim_first: bool
) -> None:
    histories, order = delivered
    repository, uow = asyncio.run(_deliver(histories, order, claim_first=claim_first))
    applied = _applied(histories, order)

    ever_detractor = {
        histories[index].response_id
        for index, applied_scores in applied.items()
        if any(is_detractor(score) for score in applied_scores)
    }
    cases = list(repository.cases.values())
    assert sorted(case.response_id for case in cases) == sorted(ever_detractor)

    opened = uow.of_type(FOLLOWUP_OPENED)
    assert sorted(event.envelope.subject or "" for event in opened) == sorted(str(case.id) for case in cases)
    assert len({event.id for event in uow.events}) == len(uow.events), "an event was emitted twice"

    for case in cases:
        history = next(h for h in histories if h.response_id == case.response_id)
        newest = history.scores[-1]
        # The case shows the newest version, and is open exactly while it is a detractor's.
        assert case.score == newest
        if is_detractor(newest):
            assert (case.status, case.resolution) == (CaseStatus.OPEN.value, None)
        else:
            assert (case.status, case.resolution) == (
                CaseStatus.RESOLVED.value,
                Resolution.SCORE_CHANGED.value,
            )
        assert (case.id, NoticeKind.CASE_OPENED.value) in repository.notifications

    for history in histories:
        assert repository.answers[history.response_id].revision == len(history.scores)
