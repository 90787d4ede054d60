"""Messages no consumer can take never stall a group: one over a megabyte, on every consumed topic,
goes to the DLQ as a truncated copy with what is needed to find the original, and each group
moves past it. Events of a tenant that does not exist are never acted on: held for a while (their
tenant.created may be on its way), then dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select

from libs.common import topics
from libs.common.dead_letters import DeadLetter
from libs.common.events import (
    SURVEY_RESPONDED,
    TENANT_CREATED,
    SurveyResponded,
    TenantCreated,
    new_event,
)
from libs.common.topics import dlq
from services.alerting.config import AlertingSettings
from services.alerting.main import build as build_alerting
from services.alerting.models import FollowupCase
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from services.scoring.config import ScoringSettings
from services.scoring.main import build as build_scoring
from services.survey.config import SurveySettings
from services.survey.main import build as build_survey
from services.survey.models import COMMON as SURVEY
from services.survey.models import Invitation
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import (
    Mailbox,
    StartService,
    eventually,
    metric_value,
    produce,
    read_dead_letters,
)
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_survey_flow import SECRET, mail_to, request_survey, unique_address

#: Every consumer group and the topics it reads.
GROUPS = {
    "nps.trigger.intake": (topics.PURCHASES, topics.TICKETS, topics.CUSTOMERS),
    "nps.trigger.responses": (topics.SURVEY_EVENTS,),
    "nps.trigger.recoveries": (topics.FOLLOWUPS,),
    "nps.survey.requests": (topics.SURVEY_REQUESTS, topics.TENANTS),
    "nps.scoring.scores": (topics.SURVEY_EVENTS, topics.TENANTS),
    "nps.alerting.followups": (topics.SURVEY_EVENTS, topics.TENANTS),
    "nps.reporting.read-model": (topics.SURVEY_EVENTS, topics.FOLLOWUPS, topics.TENANTS),
    "nps.reporting.scores": (topics.SCORES,),
    "nps.reporting.purchases": (topics.PURCHASES_RECORDED,),
}


async def _all_services(start_service: StartService) -> None:
    await start_service(build_trigger, TriggerSettings)
    await start_service(
        build_survey, SurveySettings, survey_token_secret=SECRET, survey_public_url="http://testserver"
    )
    await start_service(build_scoring, ScoringSettings)
    await _alerting(start_service)
    await start_service(build_reporting, ReportingSettings)


async def _committed(bootstrap: str, group: str, partition: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
    finally:
        await admin.close()
    found = offsets.get(partition)
    return found.offset if found is not None else -1


async def test_a_message_over_a_megabyte_on_every_consumed_topic_is_dead_lettered_and_passed(
    start_service: StartService, kafka_bootstrap: str, pg_url: str
) -> None:
    await _all_services(start_service)
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    marker = uuid.uuid4().hex
    # JSON shaped enough (a type, a tenant, the ids in data) that other tests scanning these topics
    # for their own events read past it rather than trip over it.
    ids = ", ".join(
        f'"{name}": "{marker}"' for name in ("customer_id", "invitation_id", "response_id", "case_id")
    )
    head = f'{{"type": "junk.v1", "tenantid": "{marker}", "data": {{{ids}}}, "junk": "{marker}'.encode()
    huge = head.ljust(2_000_000, b"x") + b'"}'
    placed: dict[str, Any] = {}
    try:
        for topic in sorted({t for ts in GROUPS.values() for t in ts}):
            placed[topic] = await producer.send_and_wait(topic, huge, key=marker.encode())
    finally:
        await producer.stop()

    for group, group_topics in GROUPS.items():
        for topic in group_topics:
            where = placed[topic]
            partition = TopicPartition(topic, where.partition)

            async def passed(
                group: str = group, partition: TopicPartition = partition, at: int = where.offset
            ) -> bool:
                return await _committed(kafka_bootstrap, group, partition) > at

            await eventually(passed, within=60)

            def is_copy(copy: DeadLetter, group: str = group) -> bool:
                return (
                    copy.headers.get("nps-dlq-consumer") == group.encode() and marker.encode() in copy.value
                )

            [copy] = await read_dead_letters(kafka_bootstrap, pg_url, dlq(topic), is_copy)
            headers = copy.headers
            assert headers["nps-dlq-code"] == b"too_large"
            assert headers["nps-dlq-original-size"] == str(len(huge)).encode()
            assert headers["nps-dlq-truncated"] == b"true"
            assert (headers["nps-dlq-topic"], headers["nps-dlq-offset"]) == (
                topic.encode(),
                str(where.offset).encode(),
            )
            assert len(copy.value) < 100_000 and copy.value.startswith(head)


async def test_events_of_a_tenant_that_does_not_exist_are_never_acted_on(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    survey = await start_service(
        build_survey,
        SurveySettings,
        fresh=True,
        survey_token_secret=SECRET,
        survey_public_url="http://testserver",
        send_poll_seconds=0.05,
        unknown_tenant_hold_seconds=3,
    )
    alerting = await start_service(
        build_alerting, AlertingSettings, fresh=True, unknown_tenant_hold_seconds=3
    )
    nobody = uuid.uuid4()
    address = unique_address()
    from tests.conftest import TestTenant

    ghost = TestTenant(str(nobody), "ghost", "", "")
    invitation_id = await request_survey(kafka_bootstrap, ghost, customer="c-ghost", email=address)
    answer = new_event(
        SURVEY_RESPONDED,
        tenant_id=str(nobody),
        source="/nps/survey",
        subject="c-ghost",
        data=SurveyResponded(
            response_id=uuid.uuid4(),
            invitation_id=invitation_id,
            customer_id="c-ghost",
            email=address,
            touchpoint="webshop-purchase",
            score=2,
            responded_at=datetime.now(UTC),
        ),
    )
    await produce(kafka_bootstrap, topics.SURVEY_EVENTS, answer.envelope.to_json(), key=b"c-ghost")

    def dead_lettered(event_id: str, group_suffix: str) -> Callable[[DeadLetter], bool]:
        def match(copy: DeadLetter) -> bool:
            return (
                copy.headers.get("nps-dlq-code") == b"unknown_tenant"
                and copy.headers.get("nps-dlq-consumer", b"").endswith(group_suffix.encode())
                and event_id.encode() in copy.value
            )

        return match

    # Each survey consumer group that held it dead-letters it: this test's, and the session's shared
    # survey if its hold ran out meanwhile. Every copy names the tenant nobody knows.
    database = survey.runtime.database.engine
    request_copies = await read_dead_letters(
        kafka_bootstrap,
        database,
        dlq(topics.SURVEY_REQUESTS),
        dead_lettered(str(invitation_id), ".survey.requests"),
    )
    assert request_copies
    assert all(str(nobody).encode() in copy.headers["nps-dlq-reason"] for copy in request_copies)
    await read_dead_letters(
        kafka_bootstrap, database, dlq(topics.SURVEY_EVENTS), dead_lettered(answer.id, ".alerting.followups")
    )
    assert mail_to(smtp_sink.directory, address) == []
    async with survey.runtime.database.sessions() as session:
        assert await session.scalar(select(func.count()).where(Invitation.tenant_id == nobody)) == 0
    async with alerting.runtime.database.sessions() as session:
        assert await session.scalar(select(func.count()).where(FollowupCase.tenant_id == nobody)) == 0


async def test_events_of_a_tenant_created_a_moment_later_are_held_then_acted_on(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    survey = await start_service(
        build_survey,
        SurveySettings,
        fresh=True,
        survey_token_secret=SECRET,
        survey_public_url="http://testserver",
        send_poll_seconds=0.05,
        unknown_tenant_hold_seconds=120,
    )
    from tests.conftest import TestTenant

    tenant_id = uuid.uuid4()
    name = f"late-{tenant_id.hex[:8]}"
    late = TestTenant(str(tenant_id), name, "", "")
    address = unique_address()
    await request_survey(kafka_bootstrap, late, customer="c-late", email=address)

    async def held() -> int:
        async with survey.runtime.database.sessions() as session:
            table = SURVEY.held_events
            return int(
                await session.scalar(select(func.count()).where(table.c.tenant_id == str(tenant_id))) or 0
            )

    assert await eventually(held) == 1
    # What an operator sees: the group holds events for a tenant it does not know.
    held_gauge = {"group": "requests"}

    async def holding() -> float | None:
        # This one, and any other test's events of tenants nobody created held beside it.
        async with survey.runtime.database.sessions() as session:
            table = SURVEY.held_events
            rows = await session.scalar(select(func.count()).where(table.c.consumer == "requests"))
        shown = await metric_value(survey.client, "nps_survey_held_events", **held_gauge)
        return shown if shown == rows else None

    while_held = await eventually(holding)
    await asyncio.sleep(0)  # the request is held; nothing is sent for a tenant not known yet
    assert mail_to(smtp_sink.directory, address) == []
    created = new_event(
        TENANT_CREATED,
        tenant_id=str(tenant_id),
        source="/nps/trigger",
        subject=str(tenant_id),
        data=TenantCreated(
            tenant_id=tenant_id, name=name, display_name="Late Shop A/S", created_at=datetime.now(UTC)
        ),
    )
    await produce(kafka_bootstrap, topics.TENANTS, created.envelope.to_json(), key=str(tenant_id).encode())

    async def arrived() -> list[Any]:
        return mail_to(smtp_sink.directory, address)

    [message] = await eventually(arrived, within=30)
    assert "Late Shop A/S" in str(message["Subject"]) + message.get_body(("plain",)).get_content()

    async def released() -> bool:
        return bool(await metric_value(survey.client, "nps_survey_held_events", **held_gauge) < while_held)

    await eventually(released, within=30)
    assert await held() == 0
