"""Erasure of a customer with 1,000 answers, end to end, beside raw SQL doing the same rows' work.

    make bench                                       # 1,000 answers
    BENCH_ANSWERS=5000 .venv/bin/python -m bench.erasure

The stack starts as ``make run`` starts it (supervisor, embedded Postgres, Tansu, SMTP sink, the
five services) in a temporary directory. Two customers of one tenant are seeded alike, each with
``BENCH_ANSWERS`` invitations (``survey.requested.v1``, due in 30 days, so no email goes), answers
(``survey.responded.v1`` with a name, address and comment, scores 0-10 in turn, so that about
two thirds open follow-up cases in alerting, with their timelines and owners' emails) and, in the
survey's own table, the responses the survey pages would have stored (the pages are one answer a
request; seeding them through HTTP would measure the pages, not the erasure).

Project: ``DELETE /v1/customers/{id}`` on the trigger for the first customer, until
``GET /v1/erasures/{id}`` says ``completed`` (polled every 20 ms): the trigger's part and receipt,
the outbox relay, Kafka, each service's consumer and transaction, the completions back, the receipt.

Baseline, same run: for the second customer, one asyncpg connection runs the same UPDATEs and
DELETEs of the same kinds of rows as raw SQL, one transaction per schema, nothing else (no outbox
scrub, no receipt, no Kafka). The ratio says what the platform's machinery costs on top of the
database work. Target: under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.replicas_burst import _launch, _port_block, _state, _tenant
from libs.common.events import SurveyRequested, SurveyResponded
from libs.devstack.ports import free_port

ANSWERS = int(os.environ.get("BENCH_ANSWERS", "1000"))
TARGET_SECONDS = 60.0
TOUCHPOINT = "webshop-purchase"

#: The baseline: what each service's erasure changes, as raw statements ($1 tenant, $2 customer).
BASELINE: dict[str, list[str]] = {
    "trigger": [
        "UPDATE trigger.customers SET email = NULL, name = NULL, locale = NULL, time_zone = NULL, "
        "account_id = NULL, account_owner_email = NULL, attributes = NULL "
        "WHERE tenant_id = $1 AND customer_id = $2",
        "DELETE FROM trigger.purchases WHERE tenant_id = $1 AND customer_id = $2",
    ],
    "survey": [
        "UPDATE survey.invitations SET email = 'erased@erased.invalid', name = NULL, context = NULL, "
        "trace_context = NULL, last_error = NULL, token_hash = md5(random()::text || id::text) "
        "WHERE tenant_id = $1 AND customer_id = $2",
        "UPDATE survey.responses SET comment = NULL WHERE tenant_id = $1 AND customer_id = $2",
    ],
    "scoring": ["UPDATE scoring.answers SET customer_id = NULL WHERE tenant_id = $1 AND customer_id = $2"],
    "alerting": [
        "UPDATE alerting.case_events SET body = NULL WHERE case_id IN "
        "(SELECT id FROM alerting.followup_cases WHERE tenant_id = $1 AND customer_id = $2)",
        "UPDATE alerting.notifications SET subject = '(erased)', body = '(erased)' WHERE tenant_id = $1 "
        "AND case_id IN (SELECT id FROM alerting.followup_cases WHERE tenant_id = $1 AND customer_id = $2)",
        "UPDATE alerting.followup_cases SET customer_email = NULL, customer_name = NULL, comment = NULL, "
        "note = NULL, resolution_note = NULL, attributes = '{}' WHERE tenant_id = $1 AND customer_id = $2",
        "UPDATE alerting.answers SET customer_email = NULL, customer_name = NULL, comment = NULL, "
        "context = NULL WHERE tenant_id = $1 AND customer_id = $2",
    ],
    "reporting": [
        "UPDATE reporting.responses SET comment = NULL, attributes = NULL, customer_id = NULL "
        "WHERE tenant_id = $1 AND customer_id = $2",
        "DELETE FROM reporting.purchases WHERE tenant_id = $1 AND customer_id = $2",
    ],
}

SEEDED = (
    "SELECT (SELECT count(*) FROM survey.invitations WHERE tenant_id = $1) AS invitations, "
    "(SELECT count(*) FROM scoring.answers WHERE tenant_id = $1) AS scored, "
    "(SELECT count(*) FROM alerting.answers WHERE tenant_id = $1) AS alerting, "
    "(SELECT count(*) FROM reporting.responses WHERE tenant_id = $1) AS reporting"
)
SURVEY_RESPONSES = (
    "INSERT INTO survey.responses (id, invitation_id, tenant_id, customer_id, touchpoint, score, comment, "
    "responded_at) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], "
    "$6::int2[], $7::text[], $8::timestamptz[])"
)


def _event(kind: str, tenant: uuid.UUID, customer: str, data: dict[str, Any]) -> bytes:
    envelope = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/bench",
        "type": kind,
        "tenantid": str(tenant),
        "time": datetime.now(UTC).isoformat(),
        "subject": customer,
        "data": data,
    }
    return json.dumps(envelope).encode()


async def _seed(bootstrap: str, dsn: str, tenant: uuid.UUID, customer: str) -> None:
    """``ANSWERS`` invitations and answers of one customer, onto the topics the services read."""
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144)
    await producer.start()
    rows: list[tuple[Any, ...]] = []
    try:
        for n in range(ANSWERS):
            invitation, response = uuid.uuid4(), uuid.uuid4()
            email, name, comment = (
                f"{customer}@bench.example",
                f"Bench {customer}",
                f"answer {n} of {customer}",
            )
            answered_at = now - timedelta(minutes=ANSWERS - n)
            requested = SurveyRequested(
                invitation_id=invitation,
                customer_id=customer,
                email=email,
                name=name,
                touchpoint=TOUCHPOINT,
                trigger_event_id=f"bench-{invitation}",
                trigger_event_type="purchase.completed.v1",
                send_at=now + timedelta(days=30),
            )
            answer = SurveyResponded(
                response_id=response,
                invitation_id=invitation,
                customer_id=customer,
                email=email,
                name=name,
                touchpoint=TOUCHPOINT,
                score=n % 11,
                comment=comment,
                responded_at=answered_at,
            )
            key = customer.encode()
            await producer.send(
                "nps.survey-requests",
                _event(
                    requested.event_type,
                    tenant,
                    customer,
                    requested.model_dump(mode="json", exclude_none=True),
                ),
                key=key,
            )
            await producer.send(
                "nps.survey-events",
                _event(
                    answer.event_type, tenant, customer, answer.model_dump(mode="json", exclude_none=True)
                ),
                key=key,
            )
            rows.append((response, invitation, tenant, customer, TOUCHPOINT, n % 11, comment, answered_at))
        await producer.flush()
    finally:
        await producer.stop()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SURVEY_RESPONSES, *(list(column) for column in zip(*rows, strict=True)))
    finally:
        await connection.close()


async def _wait_seeded(dsn: str, tenant: uuid.UUID, expected: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            counts = await connection.fetchrow(SEEDED, tenant)
            assert counts is not None
            if all(int(value) >= expected for value in counts.values()):
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"seeding did not finish: {dict(counts)}")
    finally:
        await connection.close()


async def _baseline(dsn: str, tenant: uuid.UUID, customer: str) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        for statements in BASELINE.values():
            async with connection.transaction():
                for statement in statements:
                    await connection.execute(statement, tenant, customer)
        return time.perf_counter() - began
    finally:
        await connection.close()


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nps-bench-erasure-") as tmp:
        data_dir = Path(tmp)
        command = [sys.executable, "-m", "libs.devstack.run", "--data-dir", str(data_dir), "--no-demo"]
        command += ["--port-base", str(_port_block(5)), "--kafka-port", str(free_port())]
        command += ["--smtp-port", str(free_port())]
        environment = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SMTP_URL", "NPS_ADMIN_TOKEN", "REPLICAS")
        }
        process = _launch(command, data_dir, environment)
        try:
            state = await _state(data_dir, process, 1)
            dsn = state["database_url"].replace("postgresql+asyncpg://", "postgresql://")
            trigger = state["services"]["trigger"]["url"]
            async with httpx.AsyncClient(timeout=60) as client:
                auth = await _tenant(client, state, (data_dir / "admin_token").read_text().strip())
                connection = await asyncpg.connect(dsn)
                try:
                    tenant = uuid.UUID(str(await connection.fetchval("SELECT id FROM trigger.tenants")))
                finally:
                    await connection.close()
                erased, baseline = "bench-erased", "bench-baseline"
                seeded_at = time.perf_counter()
                for customer in (erased, baseline):
                    await _seed(state["kafka"], dsn, tenant, customer)
                await _wait_seeded(dsn, tenant, 2 * ANSWERS)
                seeding = time.perf_counter() - seeded_at
                print(f"erasure: 2 customers x {ANSWERS:,} answers seeded in {seeding:.0f} s")

                began = time.perf_counter()
                asked = await client.delete(f"{trigger}/v1/customers/{erased}", headers=auth)
                asked.raise_for_status()
                erasure_id = asked.json()["erasure_id"]
                receipt: dict[str, Any] = {}
                while receipt.get("status") != "completed":
                    if time.perf_counter() - began > 600:
                        raise SystemExit(f"the erasure did not complete in 10 minutes: {receipt}")
                    await asyncio.sleep(0.02)
                    receipt = (await client.get(f"{trigger}/v1/erasures/{erasure_id}", headers=auth)).json()
                project = time.perf_counter() - began
            raw = await _baseline(dsn, tenant, baseline)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
    counts = {name: part["counts"] for name, part in receipt["services"].items()}
    print(f"  project : DELETE /v1/customers/{{id}} to a completed receipt: {project:.2f} s")
    print(f"            rows per service: {json.dumps(counts, sort_keys=True)}")
    print(f"  baseline: raw asyncpg UPDATE/DELETE of the same kinds of rows: {raw:.2f} s")
    print(f"  ratio   : {project / raw:.1f}x the raw statements (target: under {TARGET_SECONDS:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
