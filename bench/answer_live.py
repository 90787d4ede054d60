"""The live score the whole way: from a customer's answer (``POST /s/{token}``) to the ``nps`` event on
an open ``GET /v1/nps/stream`` whose day cell counts it. p50/p95/p99 of 200 answers and 20
corrections (a changed score for an invitation already answered), one after another, next to the
hops underneath, measured in the same run.

    .venv/bin/python -m bench.answer_live
    BENCH_ANSWERS=1000 .venv/bin/python -m bench.answer_live

The way: the survey records the answer and its event in one transaction; its outbox relay
publishes ``survey.responded.v1`` on ``nps.survey-events``; scoring's consumer counts it and records
the changed cells' ``nps.updated.v1`` in its outbox; its relay publishes them on ``nps.scores``;
reporting's ``scores`` consumer stores them and ``pg_notify``s; the stream pushes. Postgres, the
broker, the SMTP sink, the survey, scoring and reporting are real servers, each service a process of
its own with production settings. The tenant is announced on ``nps.tenants`` as the trigger does,
with a new tenant's defaults; its invitations are ``survey.requested.v1`` events, really sent to
the sink before the first answer.

Where the time goes, per answer, from the services' own timestamps (Postgres ``now()``: the start
of the transaction that wrote them): survey's HTTP answer, its relay's pick-up, scoring's consumer
transaction, scoring's relay pick-up, reporting's consumer transaction, the SSE event.

Baselines, same run: ``nps.updated`` published -> SSE event (the last hop alone, as
``bench.report_live`` measures it), and the broker alone (publish -> an assigned consumer reads it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.alerting_stack import BenchTenant, start_process
from bench.desk_list import ms, quantile
from bench.report_live import ReportingStack, figures, time_kafka, time_stream
from bench.survey_stack import TOUCHPOINT as SURVEY_TOUCHPOINT
from bench.survey_stack import (
    SurveyStack,
    announce_tenant,
    produce,
    survey_requests,
    survey_stack,
    wait_for_mail,
)
from bench.trigger_throughput import wait_ready
from libs.common.config import ServiceSettings
from libs.common.topics import SURVEY_REQUESTS
from libs.devstack.ports import free_port
from services.survey.domain.tokens import survey_token

ANSWERS = int(os.environ.get("BENCH_ANSWERS", "200"))
#: One correction after every this many answers.
CORRECT_EVERY = 10
WARM_UP = 10


@dataclass(frozen=True)
class LiveStack:
    survey: SurveyStack
    scoring_url: str
    reporting_url: str

    @property
    def reporting(self) -> ReportingStack:
        return ReportingStack(dsn=self.survey.dsn, bootstrap=self.survey.bootstrap, url=self.reporting_url)


@contextlib.asynccontextmanager
async def live_stack() -> AsyncIterator[LiveStack]:
    """The survey's stack (``bench.survey_stack``) with scoring and reporting beside it, sharing its
    Postgres and broker, each a process of its own with production settings."""
    async with survey_stack("nps-bench-answer-live-", {}) as survey:
        processes: list[subprocess.Popen[bytes]] = []
        urls: list[str] = []
        try:
            for service in ("scoring", "reporting"):
                port = free_port()
                env = {
                    **os.environ,
                    "DATABASE_URL": survey.dsn.replace("postgresql", "postgresql+asyncpg", 1),
                    "KAFKA_BOOTSTRAP_SERVERS": survey.bootstrap,
                    "HTTP_PORT": str(port),
                    "NPS_ADMIN_TOKEN": secrets.token_urlsafe(24),
                    "NPS_ENV": "production",
                    "LOG_LEVEL": "WARNING",
                }
                log = survey.workdir / f"{service}.log"
                processes.append(start_process([sys.executable, "-m", f"services.{service}"], log, env))
                urls.append(f"http://127.0.0.1:{port}")
                await wait_ready(urls[-1], processes[-1], log)
            yield LiveStack(survey, scoring_url=urls[0], reporting_url=urls[1])
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.terminate()
                process.wait(15)


async def new_tenant(stack: LiveStack) -> BenchTenant:
    """A tenant with a new tenant's defaults, announced as the trigger does; ready once the survey,
    scoring and reporting all accept its key (each has consumed the announcement)."""
    keys: dict[str, str] = {}

    async def accepted_by_all(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
        keys.update(auth)
        response = await client.get(f"{stack.survey.url}/v1/survey-settings", headers=auth)
        for url in (f"{stack.scoring_url}/v1/nps", f"{stack.reporting_url}/v1/reports/scores"):
            if response.status_code != 200:
                break
            response = await client.get(url, headers=auth)
        return response

    tenant_id, _ = await announce_tenant(stack.survey.bootstrap, "Live Shop", accepted_by_all)
    return BenchTenant(tenant_id, keys["Authorization"].removeprefix("Bearer "), "")


async def invitations_sent(stack: LiveStack, tenant: BenchTenant, count: int) -> list[str]:
    """``count`` invitations requested and sent to the sink; their survey links' tokens."""
    invitation_ids, records = survey_requests(tenant.tenant_id, count)
    await produce(stack.survey.bootstrap, SURVEY_REQUESTS, records)
    await wait_for_mail(stack.survey.mail_dir, count, within=300)
    return [survey_token(stack.survey.secret, invitation_id) for invitation_id in invitation_ids]


@dataclass
class Round:
    """One answer or correction: the token, the score, and when it was sent, answered and shown."""

    token: str
    score: int
    correction: bool
    posted: float = 0.0
    answered: float = 0.0
    streamed: float = 0.0
    #: The distribution the stream's day cell shows once this round counts.
    expected: list[int] = field(default_factory=list)


def plan(tokens: list[str]) -> list[Round]:
    """Answers one after another, a correction of an earlier one after every CORRECT_EVERY: each round
    changes the day cell, and never back to a state it had (answers in between grow the total)."""
    rounds: list[Round] = []
    given: dict[str, int] = {}
    distribution = [0] * 11
    for number, token in enumerate(tokens):
        score = number % 11
        rounds.append(Round(token, score, correction=False))
        given[token] = score
        distribution[score] += 1
        rounds[-1].expected = list(distribution)
        if number >= WARM_UP and number % CORRECT_EVERY == 0:
            earlier = tokens[number - 3]
            changed = (given[earlier] + 5) % 11
            distribution[given[earlier]] -= 1
            distribution[changed] += 1
            given[earlier] = changed
            rounds.append(Round(earlier, changed, correction=True, expected=list(distribution)))
    return rounds


async def run_rounds(stack: LiveStack, tenant: BenchTenant, rounds: list[Round]) -> None:
    """Each round's POST, then the stream until its day cell shows the round's distribution."""
    shown: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with (
        httpx.AsyncClient(base_url=stack.survey.url, timeout=30) as survey,
        httpx.AsyncClient(base_url=stack.reporting_url, headers=tenant.headers, timeout=60) as reporting,
        reporting.stream("GET", "/v1/nps/stream", params={"touchpoint": SURVEY_TOUCHPOINT}) as stream,
    ):
        reading = asyncio.create_task(_read_cells(stream, shown))
        try:
            for each in rounds:
                each.posted = time.time()
                response = await survey.post(f"/s/{each.token}", data={"score": str(each.score)})
                each.answered = time.time()
                if response.status_code != 200:
                    raise SystemExit(f"POST /s/{{token}} answered {response.status_code}")
                while True:
                    cell = await asyncio.wait_for(shown.get(), 30)
                    if cell["window"]["bucket"] == "day" and cell["distribution"] == each.expected:
                        each.streamed = time.time()
                        break
        finally:
            reading.cancel()


async def _read_cells(stream: httpx.Response, shown: asyncio.Queue[dict[str, Any]]) -> None:
    async for line in stream.aiter_lines():
        if line.startswith("data: "):
            await shown.put(json.loads(line.removeprefix("data: ")))


#: Each hop's end, by the first row in the round's time that marks it: (label, query of epochs).
HOPS = (
    (
        "survey relay picks the answer up",
        "SELECT extract(epoch FROM published_at) FROM survey.outbox "
        "WHERE event_type LIKE 'survey.response%' AND published_at IS NOT NULL",
    ),
    (
        "scoring's consumer transaction begins",
        "SELECT extract(epoch FROM processed_at) FROM scoring.processed_events "
        "WHERE consumer = 'scores' AND tenant_id = $1",
    ),
    (
        "scoring relay picks the cells up",
        "SELECT extract(epoch FROM published_at) FROM scoring.outbox "
        "WHERE event_type LIKE 'nps.updated%' AND published_at IS NOT NULL",
    ),
    (
        "reporting's scores consumer transaction begins",
        "SELECT extract(epoch FROM processed_at) FROM reporting.processed_events "
        "WHERE consumer = 'scores' AND tenant_id = $1",
    ),
)


async def hop_seconds(dsn: str, tenant: BenchTenant, rounds: list[Round]) -> list[tuple[str, list[float]]]:
    """Per hop, each measured round's time from the previous mark to the hop's (the first of its rows
    after the previous mark, inside the round), the POST the first mark and the SSE event the last;
    the HTTP answer on its own line (the survey's relay may start before the response is back)."""
    connection = await asyncpg.connect(dsn)
    try:
        marks = [sorted(float(r[0]) for r in await connection.fetch(q, *_args(q, tenant))) for _, q in HOPS]
    finally:
        await connection.close()
    names = [*(label for label, _ in HOPS), "SSE event read from the stream"]
    seconds: list[list[float]] = [[] for _ in names]
    for each in rounds:
        ends = [each.posted]
        for epochs in marks:
            ends.append(next((t for t in epochs if ends[-1] <= t <= each.streamed), ends[-1]))
        ends.append(each.streamed)
        for hop, (begin, end) in enumerate(itertools.pairwise(ends)):
            seconds[hop].append(end - begin)
    answering = [each.answered - each.posted for each in rounds]
    return [("survey answers the POST (HTTP)", answering), *zip(names, seconds, strict=True)]


def _args(query: str, tenant: BenchTenant) -> list[str]:
    return [str(tenant.tenant_id)] if "$1" in query else []


async def main() -> None:
    print(
        f"live score, the whole way: POST /s/{{token}} -> nps event on /v1/nps/stream, {ANSWERS} answers "
        f"and {ANSWERS // CORRECT_EVERY} corrections one after another"
    )
    async with live_stack() as stack:
        tenant = await new_tenant(stack)
        rounds = plan(await invitations_sent(stack, tenant, WARM_UP + ANSWERS))
        await run_rounds(stack, tenant, rounds)
        measured = rounds[WARM_UP:]
        hops = await hop_seconds(stack.survey.dsn, tenant, measured)
        last_hop = await time_stream(stack.reporting, tenant)
        broker = await time_kafka(stack.reporting)
    project = [each.streamed - each.posted for each in measured]
    corrections = [each.streamed - each.posted for each in measured if each.correction]
    print(f"  project : answer -> SSE update (POST -> its day cell on the stream): {figures(project)}")
    print(f"            corrections alone ({len(corrections)}): {figures(corrections)}")
    print("            per hop, each from the mark before it:")
    for name, seconds in hops:
        print(f"            {name:<48}: {figures(seconds)}")
    print(f"  baseline: nps.updated published -> SSE event (the last hop alone): {figures(last_hop)}")
    wait = ServiceSettings().kafka_fetch_max_wait_ms
    print(
        f"  baseline: broker publish -> assigned consumer (fetch wait {wait} ms, as the services'): "
        f"{figures(broker)}"
    )
    print(
        f"  ratio   : project / last hop = {quantile(project, 0.99) / quantile(last_hop, 0.99):.1f} at p99; "
        f"project / broker = {quantile(project, 0.99) / quantile(broker, 0.99):.1f} at p99 "
        f"(two broker hops, two relays, three transactions, HTTP); p99 {ms(quantile(project, 0.99))} "
        "of the 1 s the stream promises"
    )


if __name__ == "__main__":
    asyncio.run(main())
