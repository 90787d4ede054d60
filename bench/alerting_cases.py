"""Answer -> case visible: how long after a detractor's answer is put on Kafka its follow-up case can
be seen, at a steady 200 answers a second.

    make bench                                          # 6,000 answers at 200/s (30 s)
    BENCH_ANSWERS=12000 BENCH_RATE=400 .venv/bin/python -m bench.alerting_cases

``survey.responded.v1`` detractor answers (half urgent, 0-4; half normal, 5-6) of one tenant go
onto ``nps.survey-events`` with aiokafka on a fixed schedule; the alerting service (a real process,
production settings, with its notifier sending the owners' emails to the SMTP sink as answers
arrive) opens a case for each. A case is *visible* once its row is committed in
``alerting.followup_cases``, which is what ``GET /v1/cases/{id}`` reads: the bench polls the rows
of the answers still waiting, in one ``SELECT ... WHERE id = ANY($1)`` every 50 ms, rather than
hammering the API (a sample is then checked through the API). Also reported: when each case's
``followup.opened.v1`` was read back from ``nps.followups``, i.e. after the outbox relay published it.

Baseline, same run, same answers, same schedule: a raw aiokafka consumer (a process of its own, as
the service is) that INSERTs each batch it gets into a plain table in one statement, polled the
same way. Target: p99 <= 1 s.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.alerting_stack import AlertingStack, BenchTenant, alerting_stack, announce_tenant, start_process
from bench.survey_stack import produce, to_json
from libs.common.events import SURVEY_RESPONDED, SurveyResponded, new_event
from libs.common.kafka import ensure_topics
from libs.common.topics import ALL_TOPICS, FOLLOWUPS, SURVEY_EVENTS
from services.alerting.handlers.common import case_id_for

ANSWERS = int(os.environ.get("BENCH_ANSWERS", "6000"))
RATE = float(os.environ.get("BENCH_RATE", "200"))
POLL_SECONDS = 0.05
TARGET_P99 = 1.0
#: How long after the last answer was produced the bench waits for the stragglers.
GRACE_SECONDS = 300.0
API_SAMPLE = 50
#: The owners' emails go out while answers arrive, as they do in the steady state (production waits
#: 120 s for the comment first, so in a 30 s run its notifier would have nothing to do).
NOTIFY_DELAY = os.environ.get("BENCH_NOTIFY_DELAY", "0")

CASES_VISIBLE = "SELECT id FROM alerting.followup_cases WHERE id = ANY($1::uuid[])"
BASELINE_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_answers "
    "(id uuid PRIMARY KEY, tenant_id uuid NOT NULL, score smallint NOT NULL, payload jsonb NOT NULL, "
    "received_at timestamptz NOT NULL DEFAULT now())"
)
BASELINE_INSERT = (
    "INSERT INTO bench_answers (id, tenant_id, score, payload) "
    "SELECT id, tenant_id, score, payload::jsonb "
    "FROM unnest($1::uuid[], $2::uuid[], $3::int2[], $4::text[]) AS batch(id, tenant_id, score, payload) "
    "ON CONFLICT DO NOTHING"
)
BASELINE_VISIBLE = "SELECT id FROM bench_answers WHERE id = ANY($1::uuid[])"


@dataclass(frozen=True)
class Answer:
    response_id: uuid.UUID
    case_id: uuid.UUID
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Run:
    #: Seconds from produce to visible, of each answer that became visible.
    latencies: list[float]
    produced_per_second: float
    #: How fast cases became visible, from the first to the last: what the consumer kept up with.
    visible_per_second: float
    missing: int
    #: Seconds from produce to its followup.opened read back from nps.followups (project only).
    published: list[float]


def detractor_answers(tenant_id: uuid.UUID, count: int, prefix: str) -> list[Answer]:
    rng = random.Random(f"{prefix}-{count}")
    now = datetime.now(UTC)
    answers = []
    for index in range(count):
        response_id = uuid.uuid4()
        customer = f"{prefix}-{index}"
        score = rng.randint(0, 4) if index % 2 == 0 else rng.randint(5, 6)
        event = new_event(
            SURVEY_RESPONDED,
            tenant_id=str(tenant_id),
            data=SurveyResponded(
                response_id=response_id,
                invitation_id=uuid.uuid4(),
                customer_id=customer,
                email=f"{customer}@shoppers.example",
                name=f"Customer {index}",
                touchpoint="webshop-purchase",
                score=score,
                comment="The parcel came two weeks late." if score <= 4 else None,
                responded_at=now - timedelta(seconds=30),
            ),
            subject=customer,
            source="/nps/survey",
        )
        answers.append(Answer(response_id, case_id_for(response_id), customer.encode(), to_json(event)))
    return answers


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def produce_paced(bootstrap: str, topic: str, answers: Sequence[Answer], sent_at: list[float]) -> None:
    """One answer every 1/RATE s, on a fixed schedule (a late one does not push the others back);
    ``sent_at`` gets the instant each was handed to the producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        begin = time.perf_counter()
        for index, answer in enumerate(answers):
            delay = begin + index / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at.append(time.perf_counter())
            await producer.send(topic, answer.value, key=answer.key)
        await producer.flush()
    finally:
        await producer.stop()


async def watch_rows(
    dsn: str, query: str, ids: Sequence[uuid.UUID], sent_at: list[float], producing: asyncio.Task[None]
) -> dict[int, float]:
    """Every POLL_SECONDS, look up the rows of the answers produced and not seen yet; return when
    each was first seen (the instant the poll that found it returned)."""
    seen: dict[int, float] = {}
    waiting: set[int] = set()
    produced = 0
    connection = await asyncpg.connect(dsn)
    try:
        while len(seen) < len(ids):
            if producing.done() and time.perf_counter() > sent_at[-1] + GRACE_SECONDS:
                break
            waiting.update(range(produced, len(sent_at)))
            produced = len(sent_at)
            if waiting:
                rows = await connection.fetch(query, [ids[index] for index in waiting])
                found = time.perf_counter()
                by_id = {ids[index]: index for index in waiting}
                for row in rows:
                    index = by_id[row["id"]]
                    seen[index] = found
                    waiting.discard(index)
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await connection.close()
    return seen


class FollowupsWatch:
    """Reads ``nps.followups`` from its current end: when each awaited case's followup.opened came."""

    def __init__(self, bootstrap: str, case_ids: Sequence[uuid.UUID]) -> None:
        self._bootstrap = bootstrap
        self._index = {str(case_id): index for index, case_id in enumerate(case_ids)}
        self.seen: dict[int, float] = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        await consumer.topics()
        partitions = [
            TopicPartition(FOLLOWUPS, p) for p in sorted(consumer.partitions_for_topic(FOLLOWUPS) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        self._consumer = consumer

    async def run(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        try:
            while len(self.seen) < len(self._index) and not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=100)
                arrived = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        event = json.loads(record.value or b"{}")
                        index = self._index.get(event.get("data", {}).get("case_id", ""))
                        if event.get("type") == "followup.opened.v1" and index is not None:
                            self.seen.setdefault(index, arrived)
        finally:
            await self._consumer.stop()


async def measure(
    stack: AlertingStack,
    topic: str,
    query: str,
    ids: Sequence[uuid.UUID],
    answers: Sequence[Answer],
    *,
    opened: bool,
) -> Run:
    sent_at: list[float] = []
    followups = FollowupsWatch(stack.bootstrap, [answer.case_id for answer in answers]) if opened else None
    if followups is not None:
        await followups.start()
    stop_reading = asyncio.Event()
    producing = asyncio.create_task(produce_paced(stack.bootstrap, topic, answers, sent_at))
    watching = asyncio.create_task(watch_rows(stack.dsn, query, ids, sent_at, producing))
    reading = asyncio.create_task(followups.run(stop_reading)) if followups is not None else None
    await producing
    seen = await watching
    if reading is not None:
        # The last followup.opened follows its case's commit by a relay round: give it a moment.
        await asyncio.wait({reading}, timeout=10)
        stop_reading.set()
        await reading
    rate = (len(sent_at) - 1) / (sent_at[-1] - sent_at[0])
    spread = max(seen.values(), default=0.0) - min(seen.values(), default=0.0)
    published = [] if followups is None else [at - sent_at[index] for index, at in followups.seen.items()]
    return Run(
        latencies=[at - sent_at[index] for index, at in seen.items()],
        produced_per_second=rate,
        visible_per_second=(len(seen) - 1) / spread if spread > 0 else 0.0,
        missing=len(ids) - len(seen),
        published=published,
    )


async def wait_visible(dsn: str, query: str, ids: Sequence[uuid.UUID], within: float = 120.0) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        deadline = time.perf_counter() + within
        while len(await connection.fetch(query, list(ids))) < len(ids):
            if time.perf_counter() > deadline:
                raise SystemExit(f"the warm-up answers did not all become visible within {within:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def check_api(stack: AlertingStack, tenant: BenchTenant, answers: Sequence[Answer]) -> str:
    sample = random.Random(1).sample(list(answers), min(API_SAMPLE, len(answers)))
    async with httpx.AsyncClient(base_url=stack.url, headers=tenant.headers, timeout=30) as client:
        codes = [(await client.get(f"/v1/cases/{answer.case_id}")).status_code for answer in sample]
    ok = codes.count(200)
    return f"GET /v1/cases/{{id}} of {len(codes)} of them: {ok} answered 200"


async def project_run(stack: AlertingStack) -> tuple[Run, str]:
    tenant = await announce_tenant(stack, "cases-shop")
    warm = detractor_answers(tenant.tenant_id, 20, "warm")
    await produce(stack.bootstrap, SURVEY_EVENTS, [(answer.key, answer.value) for answer in warm])
    await wait_visible(stack.dsn, CASES_VISIBLE, [answer.case_id for answer in warm])
    await asyncio.sleep(3)  # the group settled, the first emails on their way
    answers = detractor_answers(tenant.tenant_id, ANSWERS, "cust")
    run = await measure(
        stack, SURVEY_EVENTS, CASES_VISIBLE, [answer.case_id for answer in answers], answers, opened=True
    )
    return run, await check_api(stack, tenant, answers)


async def baseline_run(stack: AlertingStack) -> Run:
    topic = f"bench.baseline.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, {topic: ALL_TOPICS[SURVEY_EVENTS]})
    connection = await asyncpg.connect(stack.dsn)
    await connection.execute(BASELINE_TABLE)
    await connection.close()
    log = stack.workdir / "baseline-consumer.log"
    command = [
        sys.executable,
        "-m",
        "bench.alerting_cases",
        "--baseline-consumer",
        stack.bootstrap,
        stack.dsn,
        topic,
    ]
    process = start_process(command, log)
    try:
        tenant_id = uuid.uuid4()
        warm = detractor_answers(tenant_id, 20, "warm")
        await produce(stack.bootstrap, topic, [(answer.key, answer.value) for answer in warm])
        await wait_visible(stack.dsn, BASELINE_VISIBLE, [answer.response_id for answer in warm])
        await asyncio.sleep(3)
        answers = detractor_answers(tenant_id, ANSWERS, "cust")
        return await measure(
            stack, topic, BASELINE_VISIBLE, [answer.response_id for answer in answers], answers, opened=False
        )
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(15)


async def baseline_consumer(bootstrap: str, dsn: str, topic: str) -> None:
    """The floor: consume as the service's runner does (a group, batches of up to 500, offsets
    committed after the database), one INSERT per batch, nothing else."""
    connection = await asyncpg.connect(dsn)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=300, max_records=500)
            columns: tuple[list[uuid.UUID], list[uuid.UUID], list[int], list[str]] = ([], [], [], [])
            for records in batches.values():
                for record in records:
                    body = json.loads(record.value or b"{}")
                    columns[0].append(uuid.UUID(body["data"]["response_id"]))
                    columns[1].append(uuid.UUID(body["tenantid"]))
                    columns[2].append(body["data"]["score"])
                    columns[3].append((record.value or b"").decode())
            if columns[0]:
                await connection.execute(BASELINE_INSERT, *columns)
                await consumer.commit()
    finally:
        await consumer.stop()
        await connection.close()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def figures(run: Run) -> str:
    if not run.latencies:
        return "nothing became visible"
    return (
        f"p50 {ms(quantile(run.latencies, 0.5))}, p99 {ms(quantile(run.latencies, 0.99))}, "
        f"max {ms(max(run.latencies))}; produced at {run.produced_per_second:.1f}/s, visible at "
        f"{run.visible_per_second:.1f}/s, {len(run.latencies):,} of {len(run.latencies) + run.missing:,} "
        "visible"
    )


async def main() -> None:
    print(
        f"alerting cases: {ANSWERS:,} detractor answers of one tenant (half urgent) onto {SURVEY_EVENTS} at "
        f"{RATE:.0f}/s; visible = the case's row committed (what GET /v1/cases/{{id}} reads), polled "
        f"every {POLL_SECONDS * 1000:.0f} ms"
    )
    async with alerting_stack("nps-bench-cases-", {"NOTIFY_DELAY_SECONDS": NOTIFY_DELAY}) as stack:
        project, api = await project_run(stack)
        baseline = await baseline_run(stack)
    print(f"  project : answer produced -> case visible: {figures(project)}")
    if project.published:
        print(
            f"            -> followup.opened read back from {FOLLOWUPS} (after the outbox relay): "
            f"p50 {ms(quantile(project.published, 0.5))}, p99 {ms(quantile(project.published, 0.99))}, "
            f"{len(project.published):,} read"
        )
    print(f"            ({api})")
    print(
        "  baseline: aiokafka consumer + one asyncpg INSERT per batch, same answers and schedule: "
        + figures(baseline)
    )
    if project.latencies and baseline.latencies:
        p50 = quantile(project.latencies, 0.5) / quantile(baseline.latencies, 0.5)
        p99 = quantile(project.latencies, 0.99) / quantile(baseline.latencies, 0.99)
        print(f"  ratio   : project / baseline latency = {p50:.2f} at p50, {p99:.2f} at p99")
        met = quantile(project.latencies, 0.99) <= TARGET_P99 and not project.missing
        print(f"  target  : p99 <= {TARGET_P99:.0f} s, every case visible: {'met' if met else 'NOT met'}")
    if project.missing:
        raise SystemExit(f"{project.missing:,} answers opened no visible case within {GRACE_SECONDS:.0f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--baseline-consumer"]:
        asyncio.run(baseline_consumer(*sys.argv[2:5]))
    else:
        asyncio.run(main())
