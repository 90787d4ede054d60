"""Scoring's handler on an in-memory repository: each changed cell is announced once with its
absolute state, a revision moves the answer in the cells of its first date and segments, and
recovery answers stay out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from libs.common.events import (
    NPS_UPDATED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    Contract,
    Event,
    NpsUpdated,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.scoring.domain.cells import CellKey
from services.scoring.domain.segments import MAX_VALUES, OTHER
from services.scoring.handlers import cell_updated_id, record_responses
from tests.support.fakes import FakeUnitOfWork
from tests.support.scoring_fakes import FakeScoringRepository

NOW = datetime(2025, 3, 5, 23, 30, tzinfo=UTC)
TENANT = uuid.UUID("0b6f7d2e-3c1a-4e5b-9f8d-7a6c5b4e3d21")
DK = SurveyContext(attributes={"country": "DK", "tier": "gold"}, locale="da-DK")


def _answer(response: int, score: int, context: SurveyContext | None, revision: int = 1) -> Event[Contract]:
    common = {
        "response_id": uuid.UUID(int=response),
        "invitation_id": uuid.UUID(int=1000 + response),
        "customer_id": f"c{response}",
        "touchpoint": "checkout",
        "score": score,
        # The revision a day later keeps the first answer's date: it is the same answer.
        "responded_at": NOW + timedelta(days=revision - 1),
        "context": context,
    }
    data: Contract = (
        SurveyResponded(**common, email=f"c{response}@example.com")
        if revision == 1
        else SurveyResponseUpdated(**common, revision=revision, updated_at=NOW + timedelta(days=1))
    )
    event_type = SURVEY_RESPONDED if revision == 1 else SURVEY_RESPONSE_UPDATED
    return new_event(event_type, tenant_id=str(TENANT), data=data, subject=f"c{response}", source="/tests")


async def _score(repository: FakeScoringRepository, *batches: list[Event[Contract]]) -> list[NpsUpdated]:
    uow = FakeUnitOfWork(repository)
    for batch in batches:
        async with uow:
            await record_responses(batch, uow, now=NOW)
            await uow.commit()
    return [e.data for e in uow.of_type(NPS_UPDATED) if isinstance(e.data, NpsUpdated)]


def _cell(announced: list[NpsUpdated], bucket: str, dimension: str | None = None) -> list[NpsUpdated]:
    return [
        data
        for data in announced
        if data.window.bucket == bucket and (data.segment.dimension if data.segment else None) == dimension
    ]


async def test_each_changed_cell_is_announced_once_with_its_state() -> None:
    repository = FakeScoringRepository()
    await repository.declare_dimensions(TENANT, ["tier"])
    announced = await _score(repository, [_answer(1, 9, DK), _answer(2, 3, DK)])
    # all-time, and (everybody, country, language, tier) x (day, week, month)
    assert len(announced) == 1 + 4 * 3
    [day] = _cell(announced, "day", "country")
    assert (day.window.start, day.window.end) == (date(2025, 3, 5), date(2025, 3, 6))
    assert day.segment is not None and day.segment.value == "DK"
    assert day.distribution == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert (day.responses, day.nps, day.version) == (2, 0.0, 2)
    assert day.confidence_interval is not None and day.confidence_interval.level == 0.95
    [week] = _cell(announced, "week", "tier")
    assert (week.window.start, week.window.end) == (date(2025, 3, 3), date(2025, 3, 10))
    [month] = _cell(announced, "month")
    assert (month.window.start, month.window.end) == (date(2025, 3, 1), date(2025, 4, 1))
    [everybody] = _cell(announced, "all")
    assert (everybody.distribution, everybody.version) == (day.distribution, 2)
    assert _cell(announced, "day", "language")[0].segment == day.segment.model_copy(
        update={"dimension": "language", "value": "da"}
    )


async def test_a_revision_moves_the_answer_in_the_cells_it_was_first_counted_in() -> None:
    repository = FakeScoringRepository()
    await _score(repository, [_answer(1, 2, DK)])
    # A day later, and with another country: the answer stays where it was counted.
    revised = await _score(repository, [_answer(1, 10, SurveyContext(attributes={"country": "SE"}), 2)])
    [day] = _cell(revised, "day", "country")
    assert (day.window.start, day.segment and day.segment.value) == (date(2025, 3, 5), "DK")
    assert (day.distribution, day.version) == ([0] * 10 + [1], 2)
    key = CellKey(TENANT, "checkout", "country", "DK", "day", date(2025, 3, 5))
    assert repository.cells[key].version == 2
    assert not any(k.value == "SE" for k in repository.cells)
    assert cell_updated_id(key, 1) != cell_updated_id(key, 2)
    assert cell_updated_id(key, 2) != cell_updated_id(
        CellKey(TENANT, "checkout", "country", "DK", "week", key.start), 2
    )


async def test_a_new_comment_changes_no_cell_and_a_recovery_answer_counts_nowhere() -> None:
    repository = FakeScoringRepository()
    await _score(repository, [_answer(1, 8, DK)])
    assert await _score(repository, [_answer(1, 8, DK, revision=2)]) == []
    recovery = SurveyContext(purpose="recovery", recovery_case_id=uuid.uuid4(), attributes={"country": "DK"})
    assert await _score(repository, [_answer(2, 10, recovery)]) == []
    assert sum(state.bins.tally().responses for state in repository.cells.values()) == 3 * 3


async def test_a_value_admitted_meanwhile_by_another_consumer_counts_towards_the_bound() -> None:
    class Concurrent(FakeScoringRepository):
        async def lock_dimensions(self, dimensions: Iterable[tuple[uuid.UUID, str]]) -> None:
            await super().lock_dimensions(dimensions)
            # What the other consumer committed while this one waited for its turn.
            self.values[(TENANT, "store")].add("taken-meanwhile")

    repository = Concurrent()
    repository.values[(TENANT, "store")] = {f"store-{n}" for n in range(MAX_VALUES - 1)}
    announced = await _score(repository, [_answer(1, 9, SurveyContext(attributes={"store": "late"}))])
    assert repository.locked_dimensions == {(TENANT, "store")}
    [store] = _cell(announced, "day", "store")
    assert store.segment is not None and store.segment.value == OTHER
    assert len(repository.values[(TENANT, "store")]) == MAX_VALUES
