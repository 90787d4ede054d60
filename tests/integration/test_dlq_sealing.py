"""DLQ copies on the broker are sealed: an operator reads them opened (``nps dead-letters``), and an
erasure of the customer, or time for a copy nobody can be told from, leaves them unreadable.

The trigger's intake dead-letters a purchase it cannot take (a negative amount) that carries the
customer's address and name; the copy on ``nps.purchases.dlq`` is read raw, as anyone with access
to the broker reads it, and as the operator's tool opens it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from libs.common import topics
from libs.common.dead_letters import DeadLetter
from tests.conftest import ServiceUnderTest, StartService, eventually, produce, read_dead_letters, read_topic
from tests.support.factories import purchase
from tests.support.services import trigger_with_tenant

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DLQ = topics.dlq(topics.PURCHASES)


async def _dead_letter_a_purchase(
    service: ServiceUnderTest, tenant_id: str, customer: str, email: str
) -> str:
    """A purchase of ``customer`` the intake refuses (negative amount): its event id."""
    bad = purchase(customer, tenant=tenant_id, email=email, name="Zelda Quux", amount=-5)
    await produce(
        service.runtime.settings.kafka_bootstrap_servers,
        topics.PURCHASES,
        json.dumps(bad).encode(),
        key=customer.encode(),
    )
    return str(bad["id"])


def _copy_of(event_id: str) -> Callable[[DeadLetter], bool]:
    return lambda copy: event_id.encode() in copy.value


async def _raw_copies(bootstrap: str, event_key: bytes) -> list[Any]:
    return await read_topic(bootstrap, DLQ, lambda record: record.key == event_key)


async def _state_of(bootstrap: str, service: ServiceUnderTest, key: bytes) -> str:
    [copy] = await read_dead_letters(bootstrap, service.runtime.database.engine, DLQ, lambda c: c.key == key)
    return copy.state


async def test_a_dead_lettered_purchase_is_sealed_on_the_broker_and_erasure_leaves_it_unreadable(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    erased, kept = (f"c-{uuid.uuid4().hex[:12]}" for _ in range(2))
    erased_email, kept_email = (f"{name}-{uuid.uuid4().hex[:8]}@example.com" for name in ("zelda", "kim"))
    erased_event = await _dead_letter_a_purchase(service, tenant.tenant_id, erased, erased_email)
    await _dead_letter_a_purchase(service, tenant.tenant_id, kept, kept_email)

    # What the broker holds names neither the address nor the name.
    [raw] = await _raw_copies(bootstrap, erased.encode())
    assert erased_email.encode() not in raw.value and b"Zelda Quux" not in raw.value
    assert erased_event.encode() not in raw.value
    headers = dict(raw.headers)
    assert headers["nps-dlq-sealed"] == b"aes-256-gcm/v1"
    assert headers["nps-dlq-code"] == b"invalid_data"
    assert b"amount" in headers["nps-dlq-reason"]

    # The operator's view opens it: the original, byte for byte what was sent.
    [opened] = await read_dead_letters(
        bootstrap, service.runtime.database.engine, DLQ, _copy_of(erased_event)
    )
    assert opened.state == "opened"
    body = json.loads(opened.value)
    assert (body["data"]["email"], body["data"]["name"], body["data"]["amount"]) == (
        erased_email,
        "Zelda Quux",
        -5,
    )

    response = await service.client.delete(f"/v1/customers/{erased}", headers=tenant.headers)
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["services"]["trigger"]["counts"]["dead_letters"] == 1

    # The copy is still on the broker, and can no longer be read; the other customer's still can.
    assert await _state_of(bootstrap, service, erased.encode()) == "erased"
    assert await _state_of(bootstrap, service, kept.encode()) == "opened"
    [still_raw] = await _raw_copies(bootstrap, erased.encode())
    assert still_raw.value == raw.value
    keys = service.runtime.database.tables.dlq_keys
    async with service.runtime.database.sessions() as session:
        left = await session.scalar(
            select(func.count()).where(keys.c.tenant_id == tenant.tenant_id, keys.c.customer_id == erased)
        )
    assert left == 0


async def test_a_copy_nobody_can_be_told_from_is_readable_for_thirty_days_then_not(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    marker = uuid.uuid4().hex
    # Not JSON: whose it is cannot be told, yet it carries an address.
    garbage = f"order {marker} for someone-{marker[:6]}@example.com, not json".encode()
    await produce(bootstrap, topics.PURCHASES, garbage, key=marker.encode())
    [copy] = await read_dead_letters(
        bootstrap, service.runtime.database.engine, DLQ, lambda c: c.key == marker.encode()
    )
    assert (copy.state, copy.value, copy.headers["nps-dlq-code"]) == ("opened", garbage, b"undecodable")

    relay = service.runtime.relay
    now = datetime.now(UTC)
    await relay.expire_dlq_keys(now + timedelta(days=29))
    assert await _state_of(bootstrap, service, marker.encode()) == "opened"
    # Attributed keys are never expired by time: only their customer's erasure removes them.
    attributed = f"c-{uuid.uuid4().hex[:12]}"
    await _dead_letter_a_purchase(service, tenant.tenant_id, attributed, "anna@example.com")
    await _state_of(bootstrap, service, attributed.encode())
    assert await relay.expire_dlq_keys(now + timedelta(days=31)) >= 1
    assert await _state_of(bootstrap, service, marker.encode()) == "erased"
    assert await _state_of(bootstrap, service, attributed.encode()) == "opened"


async def test_the_operator_reads_a_dlq_with_nps_dead_letters(
    start_service: StartService, pg_url: str
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    customer = f"c-{uuid.uuid4().hex[:12]}"
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    event_id = await _dead_letter_a_purchase(service, tenant.tenant_id, customer, email)
    await read_dead_letters(bootstrap, service.runtime.database.engine, DLQ, _copy_of(event_id))

    environment = {**os.environ, "DATABASE_URL": pg_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}

    async def tool_lines() -> list[dict[str, Any]]:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.trigger.cli", "dead-letters", DLQ, "--last", "100000"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        return [json.loads(line) for line in done.stdout.decode().splitlines()]

    [line] = [line for line in await tool_lines() if line["key"] == customer]
    assert line["state"] == "opened"
    assert json.loads(line["value"])["data"]["email"] == email
    assert line["headers"]["nps-dlq-code"] == "invalid_data"

    response = await service.client.delete(f"/v1/customers/{customer}", headers=tenant.headers)
    assert response.status_code == 202

    async def erased() -> dict[str, Any] | None:
        [after] = [line for line in await tool_lines() if line["key"] == customer]
        return after if after["state"] == "erased" else None

    after = await eventually(erased)
    assert after["value"] is None and email not in json.dumps(after)

    # A topic that is not there is one line naming it, not a traceback.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.trigger.cli", "dead-letters", "no.such.dlq"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and b"no topic 'no.such.dlq'" in done.stderr
