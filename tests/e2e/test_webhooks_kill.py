"""End to end: kill -9 of alerting while it sends a burst of outbound webhooks, and the supervisor
restarts it. Every answer reaches the tenant's receiver at least once: a delivery is a row written
with the consumed event, claimed for a lease, and a killed sender's claims come due again when
their lease runs out. A receiver may see a delivery twice (the same ``webhook-id``): at most the
batches that were on their way when the process died."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from libs.common import topics
from libs.common.events import SURVEY_RESPONDED, SurveyResponded, new_event
from tests.conftest import eventually
from tests.support.stack import Stack, new_tenant, stack_launcher, stop
from tests.support.webhook_receiver import Receiver, receiving

ANSWERS = 400
KILLS = 2
BATCH = 50
#: Answers are promoters: a response.recorded each, and no case (nor case.opened) to wait for.
SCORE = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        # The receiver is on this machine, a private address.
        "OUTBOUND_ALLOW_PRIVATE": "true",
        "WEBHOOK_BATCH_SIZE": str(BATCH),
        # A killed sender's claims come due again 11 s later instead of 30.
        "WEBHOOK_LEASE_SECONDS": "11",
    }
    launcher = stack_launcher(tmp_path_factory.mktemp("webhooks-kill"), env=env)
    started = launcher.start()
    try:
        yield started
    finally:
        stop(launcher.processes)


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(stack.state()["database_url"])
    try:
        yield engine
    finally:
        await engine.dispose()


async def _scalar(db: AsyncEngine, sql: str, **params: Any) -> Any:
    async with db.connect() as connection:
        return await connection.scalar(text(sql), params)


async def _publish_answers(bootstrap: str, tenant_id: str) -> set[str]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    responses: set[str] = set()
    try:
        for n in range(ANSWERS):
            customer = f"kill-{n}"
            data = SurveyResponded(
                response_id=uuid.uuid4(),
                invitation_id=uuid.uuid4(),
                customer_id=customer,
                email=f"{customer}@customers.example",
                touchpoint="checkout",
                score=SCORE,
                responded_at=datetime.now(UTC) - timedelta(minutes=1),
            )
            responses.add(str(data.response_id))
            event = new_event(
                SURVEY_RESPONDED, tenant_id=tenant_id, data=data, subject=customer, source="/tests"
            )
            await producer.send(topics.SURVEY_EVENTS, event.envelope.to_json(), key=customer.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return responses


async def _now(value: Any) -> Any:
    return value


async def _received_at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.at("/burst")) >= count


async def _restarted(stack: Stack, pid: int) -> bool:
    return stack.pid("alerting") != pid


_DELIVERED = (
    "SELECT count(*) FROM alerting.webhook_deliveries WHERE tenant_id = :tenant AND state = 'delivered'"
)


async def test_kill_9_of_the_sender_mid_burst_loses_no_delivery(stack: Stack, db: AsyncEngine) -> None:
    owner = f"cx-{uuid.uuid4().hex[:6]}@kill.example"
    async with httpx.AsyncClient(timeout=30) as client, receiving(delay=0.05) as receiver:
        headers = await new_tenant(client, stack, owner_email=owner)
        alerting = stack.urls["alerting"]

        async def known() -> Any:
            answer = await client.get(f"{alerting}/v1/webhook-endpoints", headers=headers)
            return answer.status_code == 200

        await eventually(known, within=60)
        created = await client.post(
            f"{alerting}/v1/webhook-endpoints",
            json={"url": receiver.url("/burst"), "event_types": ["response.recorded"]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        tenant_id = str(
            await _scalar(db, "SELECT id FROM alerting.tenants WHERE owner_email = :owner", owner=owner)
        )
        responses = await _publish_answers(stack.state()["kafka"], tenant_id)

        kills: list[int] = []
        for _ in range(KILLS):
            # A batch further than the last kill, and short of the end: each kill lands mid-burst.
            least = min(len(receiver.at("/burst")) + BATCH, ANSWERS - BATCH)
            await eventually(partial(_received_at_least, receiver, least), within=90, interval=0.02)
            received = len(receiver.at("/burst"))
            pid = stack.pid("alerting")
            os.kill(pid, signal.SIGKILL)
            kills.append(received)
            await eventually(partial(_restarted, stack, pid), within=30)
        # Each kill came in the middle of the burst, not after it.
        assert all(count < ANSWERS for count in kills), kills

        def delivered() -> set[str]:
            return {item.verify(secret)["data"]["response_id"] for item in receiver.at("/burst")}

        await eventually(lambda: _now(delivered() >= responses), within=180, interval=0.5)
        assert delivered() == responses

        # The log agrees: every delivery is delivered, none pending or failed.
        async def settled() -> Any:
            return (
                await _scalar(
                    db,
                    _DELIVERED,
                    tenant=tenant_id,
                )
                == ANSWERS
            )

        await eventually(settled, within=60)
        # Repeats are bounded by what was on its way at the kills: a batch each.
        ids = [item.headers["webhook-id"] for item in receiver.at("/burst")]
        assert len(ids) - len(set(ids)) <= KILLS * BATCH
