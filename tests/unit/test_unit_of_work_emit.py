"""Emitting a contract: the unit of work fills in its type, topic and the service's source."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.common import topics
from libs.common.db import UnitOfWork, add_common_tables, service_source
from libs.common.events import SURVEY_SENT, SurveyOpened, SurveySent, new_event
from tests.support.fakes import FakeUnitOfWork

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")
INVITATION = uuid.UUID("00000000-0000-4000-8000-000000000002")
SENT = SurveySent(invitation_id=INVITATION, customer_id="c1", touchpoint="webshop-purchase", sent_at=NOW)


def test_a_services_source_is_named_after_it() -> None:
    assert service_source("trigger") == "/nps/trigger"


async def test_emitting_a_contract_infers_its_type_topic_and_source() -> None:
    uow = FakeUnitOfWork(None, source=service_source("survey"))
    async with uow:
        uow.emit(SENT, tenant_id=TENANT, subject="c1", event_id="sent-1", time=NOW)
        await uow.commit()
    [event] = uow.events
    assert event.type == SURVEY_SENT
    assert event.envelope.source == "/nps/survey"
    assert event.tenant == TENANT
    assert event.tenant_id == str(TENANT)
    assert (event.id, event.envelope.time, event.envelope.subject) == ("sent-1", NOW, "c1")
    assert event.data == SENT
    [row] = uow.outbox
    assert (row["event_type"], row["topic"], row["key"]) == (SURVEY_SENT, topics.SURVEY_EVENTS, "c1")


async def test_the_same_event_as_a_hand_built_envelope() -> None:
    uow = FakeUnitOfWork(None, source="/nps/survey")
    async with uow:
        uow.emit(SENT, tenant_id=TENANT, subject="c1", event_id="sent-1", time=NOW, key="other-key")
        built = new_event(
            SURVEY_SENT,
            tenant_id=str(TENANT),
            data=SENT,
            subject="c1",
            source="/nps/survey",
            event_id="sent-1",
            time=NOW,
        )
        uow.emit(built)
        await uow.commit()
    first, second = uow.outbox
    assert first["payload"] == second["payload"]
    assert (first["key"], second["key"]) == ("other-key", "c1")


async def test_a_step_has_its_own_type_and_an_id_is_random_unless_given() -> None:
    uow = FakeUnitOfWork(None)
    async with uow:
        opened = SurveyOpened(
            invitation_id=INVITATION, customer_id="c1", touchpoint="webshop-purchase", at=NOW
        )
        uow.emit(opened, tenant_id=TENANT, subject="c1")
        uow.emit(opened, tenant_id=TENANT, subject="c1")
        await uow.commit()
    assert [event.type for event in uow.events] == ["survey.opened.v1"] * 2
    assert uow.events[0].id != uow.events[1].id


def test_a_unit_of_work_of_no_service_cannot_sign_a_contract() -> None:
    uow: UnitOfWork = UnitOfWork(async_sessionmaker(), add_common_tables(MetaData(schema="nobody")))
    with pytest.raises(RuntimeError, match="belongs to no service"):
        uow.emit(SENT, tenant_id=TENANT, subject="c1")
