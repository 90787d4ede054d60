"""The trace context crosses every hop through the real machinery: an HTTP request's ``traceparent``
reaches the events its handler wrote to the outbox, as the relay publishes them to Kafka; a consumed
event's context reaches the events its handler emits; a malformed context is ignored, never a
reason to refuse a request or dead-letter a message. (No exporter is configured here: the
OpenTelemetry API still passes contexts on, as it does in production without an endpoint.)"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from libs.common import topics
from libs.common.events import SURVEY_REQUESTED
from tests.conftest import StartService, produce, read_topic
from tests.support.factories import purchase
from tests.support.services import trigger_with_tenant


def request_for(customer: str) -> Any:
    def match(record: Any) -> bool:
        body = json.loads(record.value)
        return bool(body["type"] == SURVEY_REQUESTED and body["data"]["customer_id"] == customer)

    return match


def trace_id_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_a_requests_trace_context_survives_the_outbox_to_kafka(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    trace_id = secrets.token_hex(16)
    customer = f"c-{uuid.uuid4().hex}"
    response = await service.client.post(
        "/v1/events",
        json=purchase(customer),
        headers={
            **tenant.headers,
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
            "tracestate": "shop=7",
        },
    )
    assert response.status_code == 202 and response.json()["results"][0]["decision"] == "invited"

    [record] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_REQUESTS, request_for(customer)
    )
    envelope = json.loads(record.value)
    assert trace_id_of(envelope["traceparent"]) == trace_id
    assert envelope["tracestate"] == "shop=7"


async def test_a_malformed_traceparent_on_a_request_is_ignored(start_service: StartService) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customer = f"c-{uuid.uuid4().hex}"
    response = await service.client.post(
        "/v1/events",
        json=purchase(customer),
        headers={**tenant.headers, "traceparent": "00-0000-not-hex-at-all-zz"},
    )
    assert response.status_code == 202 and response.json()["results"][0]["decision"] == "invited"

    [record] = await read_topic(
        service.runtime.settings.kafka_bootstrap_servers, topics.SURVEY_REQUESTS, request_for(customer)
    )
    # No context to continue, and no exporter to start one: the event carries none.
    assert "traceparent" not in json.loads(record.value)


async def test_a_consumed_events_trace_context_reaches_what_its_handler_emits(
    start_service: StartService,
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    bootstrap = service.runtime.settings.kafka_bootstrap_servers
    traced, malformed = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    trace_id = secrets.token_hex(16)
    good = purchase(traced, tenant=tenant.tenant_id)
    good["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    bad = purchase(malformed, tenant=tenant.tenant_id)
    bad["traceparent"] = "01-nonsense"
    bad["tracestate"] = {"not": "a string"}
    # One at a time: events consumed in one batch continue the first one's trace.
    await produce(bootstrap, topics.PURCHASES, json.dumps(bad).encode(), key=malformed.encode())
    # The malformed context is dropped; the purchase is decided like any other, not dead-lettered.
    [fresh] = await read_topic(bootstrap, topics.SURVEY_REQUESTS, request_for(malformed))
    assert "traceparent" not in json.loads(fresh.value)

    await produce(bootstrap, topics.PURCHASES, json.dumps(good).encode(), key=traced.encode())
    [continued] = await read_topic(bootstrap, topics.SURVEY_REQUESTS, request_for(traced))
    assert trace_id_of(json.loads(continued.value)["traceparent"]) == trace_id
