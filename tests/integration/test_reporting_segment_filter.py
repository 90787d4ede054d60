"""The comments feed's segment filter names segments as scoring does (the cells the segments
table shows): for awkward snapshots, an answer is found under exactly the built-in segments
scoring's ``segments_of`` gives it, against the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from libs.common.events import SURVEY_RESPONDED, Contract, Event, SurveyContext, new_event
from services.reporting.config import ReportingSettings
from services.reporting.handlers import read_model
from services.reporting.main import build
from services.reporting.repository import Period, ReportingRepository, Segment, VerbatimFilter
from services.scoring.domain.segments import segments_of
from tests.conftest import StartService
from tests.integration.test_reporting_verbatims import answer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)

SNAPSHOTS = (
    SurveyContext(
        attributes={"store": " store-1\u00a0", "country": "DK"}, locale="da_DK", account_id="A\x07-1"
    ),
    SurveyContext(attributes={"store": "\u2003" + "x" * 190 + " \u205f"}, account_id="A-1"),
    SurveyContext(attributes={"category": "a, b,a,,c, d ,e,f"}, locale="PT-br"),
    SurveyContext(attributes={"categories": "shoes\u3000, bags"}),
)


async def test_an_answer_is_found_under_exactly_the_segments_scoring_counts_it_in(
    start_service: StartService,
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = uuid.uuid4()
    answers = [
        answer("checkout", 8, "said something", NOW - timedelta(hours=1), context) for context in SNAPSHOTS
    ]
    events: list[Event[Contract]] = [
        new_event(
            SURVEY_RESPONDED, tenant_id=str(tenant), data=data, subject=data.customer_id, source="/tests"
        )
        for data in answers
    ]
    async with reporting.runtime.database.uow() as uow:
        await read_model.project(events, uow)
        await uow.commit()

    expected: dict[tuple[str, str], set[uuid.UUID]] = {}
    for data in answers:
        for segment in segments_of(data.context):
            expected.setdefault((segment.dimension, segment.value), set()).add(data.response_id)
    # Values as sent, untrimmed, or beyond the fifth distinct category: in no segment of scoring's.
    near_misses = [
        ("store", " store-1\u00a0"),
        ("store", "\u2003" + "x" * 190 + " \u205f"),
        ("category", "f"),
        ("category", ""),
        ("account", "A\x07-1"),
        ("language", "pt-br"),
    ]
    for near_miss in near_misses:
        assert near_miss not in expected
        expected[near_miss] = set()
    assert {
        ("category", "e"),
        ("store", "store-1"),
        ("account", "A-1"),
        ("store", "x" * 190),
    } <= expected.keys()

    period = Period(tenant, NOW - timedelta(days=1), NOW + timedelta(days=1))
    async with reporting.runtime.database.uow() as uow:
        repository: ReportingRepository = uow.repository
        for (dimension, value), response_ids in expected.items():
            found = await repository.verbatims(VerbatimFilter(period, Segment(dimension, value)), 50)
            assert {row.response_id for row in found} == response_ids, (dimension, value)
