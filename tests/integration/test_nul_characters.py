"""A NUL character (JSON ``\\u0000``) cannot be stored in Postgres text. An event carrying one is
refused by itself, naming the field, and the rest of its batch is decided as usual, over HTTP and
on Kafka; the log never shows the address that came with it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from libs.common import topics
from libs.common.topics import dlq
from tests.conftest import StartService, eventually, produce, read_dead_letters
from tests.support.factories import purchase
from tests.support.services import decisions, trigger_with_tenant


async def test_an_event_with_a_nul_is_refused_alone_and_the_batch_goes_on(
    start_service: StartService, caplog: Any
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    first, poisoned, last = (f"c-{uuid.uuid4().hex[:10]}" for _ in range(3))
    bad = purchase(poisoned, email="poisoned@example.com")
    bad["data"]["name"] = "Jane\x00Doe"

    response = await service.client.post(
        "/v1/events",
        content=json.dumps([purchase(first), bad, purchase(last)]),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["error"] == "data.name: must not contain the NUL character (\\u0000)"
    assert [d["outcome"] for d in await decisions(service, tenant, first)] == ["invited"]
    assert [d["outcome"] for d in await decisions(service, tenant, last)] == ["invited"]
    assert await decisions(service, tenant, poisoned) == []
    assert "poisoned@example.com" not in caplog.text


async def test_a_nul_on_kafka_is_dead_lettered_naming_the_field_and_the_partition_moves_on(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex[:10]}"
    bad = {**purchase(customer, tenant=tenant.tenant_id), "id": f"nul-{uuid.uuid4().hex}"}
    bad["data"]["customer_id"] = "a\x00b"
    good = purchase(customer, tenant=tenant.tenant_id)
    for event in (bad, good):
        await produce(kafka_bootstrap, topics.PURCHASES, json.dumps(event).encode(), key=customer.encode())

    async def decided() -> list[dict[str, Any]]:
        return await decisions(service, tenant, customer)

    assert [d["outcome"] for d in await eventually(decided)] == ["invited"]
    [copy] = await read_dead_letters(
        kafka_bootstrap,
        service.runtime.database.engine,
        dlq(topics.PURCHASES),
        lambda r: bad["id"].encode() in r.value,
    )
    headers = copy.headers
    assert headers["nps-dlq-code"] == b"nul_character"
    assert headers["nps-dlq-reason"] == b"data.customer_id: must not contain the NUL character (\\u0000)"
