"""Scoring's handler on an in-memory repository: each changed cell's event carries its spend per
currency and group, a revision moves that spend, and two answers whose moves cancel out in the
counts still announce the spend they moved."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from libs.common.events import (
    NPS_UPDATED,
    SURVEY_RESPONDED,
    SURVEY_RESPONSE_UPDATED,
    CellSpend,
    Contract,
    Event,
    Money,
    NpsUpdated,
    SurveyContext,
    SurveyResponded,
    SurveyResponseUpdated,
    new_event,
)
from services.scoring.handlers import record_responses
from tests.support.fakes import FakeUnitOfWork
from tests.support.scoring_fakes import FakeScoringRepository

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
TENANT = uuid.UUID("5d0c7e2a-1b3f-4c5d-8e9f-0a1b2c3d4e5f")


def _context(*amounts: tuple[str, int]) -> SurveyContext:
    return SurveyContext(spend_12m=[Money(amount_minor=amount, currency=code) for code, amount in amounts])


def _answer(response: int, score: int, context: SurveyContext | None, revision: int = 1) -> Event[Contract]:
    common = {
        "response_id": uuid.UUID(int=response),
        "invitation_id": uuid.UUID(int=1000 + response),
        "customer_id": f"c{response}",
        "touchpoint": "checkout",
        "score": score,
        "responded_at": NOW,
        # A revision's context does not change the snapshot: the first answer's is kept.
        "context": context if revision == 1 else _context(("DKK", 1)),
    }
    data: Contract = (
        SurveyResponded(**common, email=f"c{response}@example.com")
        if revision == 1
        else SurveyResponseUpdated(**common, revision=revision, updated_at=NOW + timedelta(minutes=5))
    )
    event_type = SURVEY_RESPONDED if revision == 1 else SURVEY_RESPONSE_UPDATED
    return new_event(event_type, tenant_id=str(TENANT), data=data, subject=f"c{response}", source="/tests")


async def _day_cell(repository: FakeScoringRepository, batch: list[Event[Contract]]) -> list[NpsUpdated]:
    uow = FakeUnitOfWork(repository)
    async with uow:
        await record_responses(batch, uow, now=NOW)
        await uow.commit()
    return [
        e.data
        for e in uow.of_type(NPS_UPDATED)
        if isinstance(e.data, NpsUpdated) and e.data.window.bucket == "day"
    ]


async def test_a_cells_event_carries_its_spend_and_a_revision_moves_it() -> None:
    repository = FakeScoringRepository()
    [day] = await _day_cell(
        repository,
        [
            _answer(1, 3, _context(("DKK", 50_000), ("EUR", 700))),
            _answer(2, 9, _context(("DKK", 100))),
            _answer(3, 2, None),
        ],
    )
    assert day.spend == [
        CellSpend(currency="DKK", promoters=100, passives=0, detractors=50_000),
        CellSpend(currency="EUR", promoters=0, passives=0, detractors=700),
    ]
    [day] = await _day_cell(repository, [_answer(1, 9, None, revision=2)])
    assert day.spend == [
        CellSpend(currency="DKK", promoters=50_100, passives=0, detractors=0),
        CellSpend(currency="EUR", promoters=700, passives=0, detractors=0),
    ]
    # The all-time score carries no spend.
    assert all(e.spend is None for e in (await _all_time(repository)))


async def _all_time(repository: FakeScoringRepository) -> list[NpsUpdated]:
    uow = FakeUnitOfWork(repository)
    async with uow:
        await record_responses([_answer(9, 8, _context(("DKK", 5)))], uow, now=NOW)
        await uow.commit()
    return [
        e.data
        for e in uow.of_type(NPS_UPDATED)
        if isinstance(e.data, NpsUpdated) and e.data.window.bucket == "all"
    ]


async def test_moves_that_cancel_in_the_counts_still_announce_the_spend_they_moved() -> None:
    repository = FakeScoringRepository()
    await _day_cell(repository, [_answer(1, 3, _context(("DKK", 500))), _answer(2, 9, _context(("DKK", 20)))])
    [day] = await _day_cell(repository, [_answer(1, 9, None, revision=2), _answer(2, 3, None, revision=2)])
    assert day.distribution == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert day.spend == [CellSpend(currency="DKK", promoters=500, passives=0, detractors=20)]
    assert day.version == 4


async def test_a_cell_announces_its_first_20_currencies_in_currency_order() -> None:
    codes = [f"A{chr(65 + first)}{chr(65 + second)}" for first in range(3) for second in range(8)][:21]
    answers = [
        _answer(10 + index, 3, _context(*((code, 1) for code in codes[start : start + 7])))
        for index, start in enumerate(range(0, 21, 7))
    ]
    [day] = await _day_cell(FakeScoringRepository(), answers)
    assert day.spend is not None
    assert [each.currency for each in day.spend] == sorted(codes)[:20]
