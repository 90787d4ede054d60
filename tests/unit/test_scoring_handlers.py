"""Scoring's handler on an in-memory repository: answers and their revisions, in any order and
however often delivered, leave each answer counted once, in the category of its latest revision."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.events import (
    NPS_UPDATED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    Event,
    NpsUpdated,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.scoring.domain.nps import Tally
from services.scoring.handlers import record_responses
from tests.support.fakes import FakeUnitOfWork
from tests.support.scoring_fakes import FakeScoringRepository

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
TENANT = uuid.UUID("6f1d0c4e-55a8-4c0f-9a6b-1b7f3c2d9e01")


def _answer(response: int, score: int, revision: int = 1) -> Event[Contract]:
    response_id = uuid.UUID(int=response)
    common = {
        "response_id": response_id,
        "invitation_id": uuid.UUID(int=1000 + response),
        "customer_id": f"c{response}",
        "touchpoint": "webshop-purchase",
        "score": score,
        "responded_at": NOW,
    }
    data: Contract
    if revision == 1:
        data = SurveyResponded(**common, email=f"c{response}@example.com")
        event_type = SURVEY_RESPONDED
    else:
        data = SurveyResponseUpdated(
            **common, revision=revision, updated_at=NOW + timedelta(minutes=revision)
        )
        event_type = SURVEY_RESPONSE_UPDATED
    return new_event(
        event_type,
        tenant_id=str(TENANT),
        data=data,
        subject=f"c{response}",
        source="/tests",
        event_id=f"{response_id}:{revision}",
    )


async def _score(
    batches: list[list[Event[Contract]]],
) -> tuple[FakeScoringRepository, FakeUnitOfWork[FakeScoringRepository]]:
    repository = FakeScoringRepository()
    uow = FakeUnitOfWork(repository)
    for batch in batches:
        async with uow:
            await record_responses(batch, uow, now=NOW)
            await uow.commit()
    return repository, uow


def _all_time(uow: FakeUnitOfWork[FakeScoringRepository]) -> list[Contract]:
    """The all-time score of each touchpoint; the cells' own are in test_scoring_cells.py."""
    return [
        e.data
        for e in uow.of_type(NPS_UPDATED)
        if isinstance(e.data, NpsUpdated) and e.data.window.bucket == "all"
    ]


async def test_an_answer_is_counted_and_the_new_score_announced() -> None:
    repository, uow = await _score([[_answer(1, 10), _answer(2, 3)]])
    [announced] = _all_time(uow)
    assert isinstance(announced, NpsUpdated)
    assert (announced.promoters, announced.detractors, announced.nps) == (1, 1, 0.0)
    [counts] = await repository.tallies_of_tenant(TENANT)
    assert counts.tally == Tally(promoters=1, detractors=1)


async def test_a_redelivered_answer_is_not_counted_again() -> None:
    repository, uow = await _score([[_answer(1, 10)], [_answer(1, 10)]])
    [counts] = await repository.tallies_of_tenant(TENANT)
    assert counts.tally == Tally(promoters=1)
    assert len(_all_time(uow)) == 1


async def test_a_replaced_score_moves_the_answer_and_an_older_revision_changes_nothing() -> None:
    repository, _ = await _score([[_answer(1, 2)], [_answer(1, 9, revision=3)], [_answer(1, 7, revision=2)]])
    [counts] = await repository.tallies_of_tenant(TENANT)
    assert counts.tally == Tally(promoters=1)


versions = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3), st.integers(min_value=1, max_value=4), st.integers(0, 10)
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(versions, st.data())
def test_whatever_the_order_each_answer_counts_once_in_its_latest_category(
    delivered: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    # One score per (answer, revision): a revision is the whole answer, so repeats carry the same.
    scores = {(response, revision): score for response, revision, score in delivered}
    events = [_answer(response, score, revision) for (response, revision), score in scores.items()]
    arrival = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))
    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=max(1, len(arrival) - 1)))))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True) if arrival[a:b]]
    repository, _ = asyncio.run(_score(batches))
    latest = {
        response: score
        for (response, revision), score in sorted(scores.items())
        if revision == max(r for (a, r) in scores if a == response)
    }
    counted = asyncio.run(repository.tallies_of_tenant(TENANT))
    assert (counted[0].tally if counted else Tally()) == Tally.of(latest.values())
