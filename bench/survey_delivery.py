"""Survey delivery: invitation emails/s and answer submissions/s, each next to a raw baseline measured
in the same run on the same data.

    make bench                                   # 5,000 emails, 5,000 answers
    BENCH_EMAILS=20000 BENCH_RESPONSES=20000 .venv/bin/python -m bench.survey_delivery

1. Emails: ``survey.requested.v1`` events go onto ``nps.survey-requests``; the survey service (a real
   process) schedules, renders and sends them to the SMTP sink (also a real process). The clock runs
   from the first produce until the sink holds every message. Baseline: aiosmtplib sending the same
   number of pre-rendered invitation emails to the same sink, as many at a time as the service may.
2. Answers: ``POST /s/{token}`` with a score for the invitations of step 1, a fixed number in flight.
   Baseline: the same requests against a minimal Starlette app (a subprocess under uvicorn) that does
   one asyncpg INSERT per POST into the same Postgres and answers a short HTML page.

Figures vary on shared machines: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.policy import SMTP
from pathlib import Path

import aiosmtplib
import asyncpg
import httpx

from bench.survey_stack import (
    MAIL_FROM,
    announce_tenant,
    mail_count,
    produce,
    survey_requests,
    survey_stack,
    wait_for_mail,
)
from libs.common.topics import SURVEY_REQUESTS
from libs.devstack.ports import free_port, wait_for_port
from services.survey.domain.tokens import survey_token
from services.survey.rendering import Recipient, invitation_email

EMAILS = int(os.environ.get("BENCH_EMAILS", "5000"))
RESPONSES = int(os.environ.get("BENCH_RESPONSES", "5000"))
SEND_CONCURRENCY = int(os.environ.get("BENCH_SEND_CONCURRENCY", "20"))
SEND_BATCH_SIZE = int(os.environ.get("BENCH_SEND_BATCH_SIZE", "200"))
HTTP_CONCURRENCY = int(os.environ.get("BENCH_HTTP_CONCURRENCY", "32"))
# The highest sending rate a tenant may set; the default (600 a minute) would measure the limiter.
TENANT_RATE_PER_MINUTE = 100_000
BASELINE_PAGE = b"<!doctype html><html><body><p>Thank you for your answer.</p></body></html>"


async def provision_tenant(bootstrap: str, url: str) -> uuid.UUID:
    """A new tenant whose sending rate is raised through the survey's API, so that the limiter is not
    what is measured."""
    tenant_id, _ = await announce_tenant(
        bootstrap,
        "Bench Shop",
        lambda client, auth: client.put(
            f"{url}/v1/survey-settings", json={"send_rate_per_minute": TENANT_RATE_PER_MINUTE}, headers=auth
        ),
    )
    return tenant_id


async def count_sent(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM survey.invitations WHERE status IN ('sent', 'responded')"
        )
        return count
    finally:
        await connection.close()


async def wait_all_sent(dsn: str, expected: int, within: float = 120.0) -> float:
    deadline = time.perf_counter() + within
    while (count := await count_sent(dsn)) < expected:
        if time.perf_counter() > deadline:
            raise SystemExit(f"{count} of {expected} invitations marked sent within {within:.0f} s")
        await asyncio.sleep(0.05)
    return time.perf_counter()


@dataclass(frozen=True)
class EmailRun:
    seconds: float
    recorded_seconds: float
    received: int


async def project_emails(
    bootstrap: str, dsn: str, mail_dir: Path, tenant_id: uuid.UUID
) -> tuple[EmailRun, list[uuid.UUID]]:
    invitation_ids, records = survey_requests(tenant_id, EMAILS)
    before = mail_count(mail_dir)
    begin = time.perf_counter()
    producing = asyncio.create_task(produce(bootstrap, SURVEY_REQUESTS, records))
    received = await wait_for_mail(mail_dir, before + EMAILS)
    await producing
    recorded = await wait_all_sent(dsn, EMAILS)
    # Counted again once every invitation is recorded as sent: a second send would show up here.
    return (
        EmailRun(received - begin, recorded - begin, mail_count(mail_dir) - before),
        invitation_ids,
    )


def prerendered(count: int, secret: str, public_url: str) -> list[tuple[str, bytes]]:
    """The same invitation email the service sends, rendered before the clock starts."""
    now = datetime.now(UTC)
    messages = []
    for index in range(count):
        invitation_id = uuid.uuid4()
        address = f"base-{index}@bench.example"
        message = invitation_email(
            invitation_id=invitation_id,
            recipient=Recipient(address, f"Customer {index}"),
            token=survey_token(secret, invitation_id),
            public_url=public_url,
            mail_from=MAIL_FROM,
            mail_domain="bench.example",
            now=now,
        )
        messages.append((address, message.as_bytes(policy=SMTP)))
    return messages


async def baseline_emails(
    host: str, port: int, mail_dir: Path, messages: list[tuple[str, bytes]], *, reuse_connections: bool
) -> float:
    """``SEND_CONCURRENCY`` workers send the messages; each either keeps one connection open or opens
    one per message (as the service does)."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)
    sender = "survey@bench.example"

    async def worker() -> None:
        if reuse_connections:
            async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30) as smtp:
                while not queue.empty():
                    address, raw = queue.get_nowait()
                    await smtp.sendmail(sender, [address], raw)
        else:
            while not queue.empty():
                address, raw = queue.get_nowait()
                await aiosmtplib.send(raw, sender=sender, recipients=[address], hostname=host, port=port)

    before = mail_count(mail_dir)
    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(SEND_CONCURRENCY)))
    end = await wait_for_mail(mail_dir, before + len(messages))
    return end - begin


@dataclass(frozen=True)
class HttpRun:
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    def failures(self) -> str:
        others = {status: n for status, n in sorted(self.statuses.items()) if status != 200}
        return ", ".join(f"{n} x {status}" for status, n in others.items()) or "none"


async def post_all(url: str, forms: list[tuple[str, dict[str, str]]]) -> HttpRun:
    """POST every form, ``HTTP_CONCURRENCY`` in flight; any 200 counts (the page is not parsed)."""
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
    for item in forms:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=HTTP_CONCURRENCY, max_keepalive_connections=HTTP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                path, form = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(path, data=form)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(HTTP_CONCURRENCY)))
        seconds = time.perf_counter() - begin
    return HttpRun(seconds, latencies, statuses)


async def warm_up(url: str, requests: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]) -> None:
    """A few requests first, so that neither side pays for first-use costs inside the measurement."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(requests(client) for _ in range(HTTP_CONCURRENCY)))


# --- The baseline web app (run in its own process) ------------------------------------------------


def serve_baseline(port: int, dsn: str) -> None:
    """A minimal answer endpoint: parse the form, one INSERT, a short page."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    pool: asyncpg.Pool | None = None

    async def answer(request: Request) -> HTMLResponse:
        assert pool is not None
        form = await request.form()
        await pool.execute(
            "INSERT INTO bench_answers (token, score, answered_at) VALUES ($1, $2, now())",
            request.path_params["token"],
            int(str(form["score"])),
        )
        return HTMLResponse(BASELINE_PAGE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        # The same pool size the survey service uses by default.
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS bench_answers (token text, score smallint, answered_at timestamptz)"
        )
        try:
            yield
        finally:
            await pool.close()

    app = Starlette(routes=[Route("/s/{token}", answer, methods=["POST"])], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_baseline_app(dsn: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.survey_delivery", "serve-baseline", str(port)],
        env={**os.environ, "BENCH_BASELINE_DSN": dsn},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, port


def print_http(label: str, run: HttpRun) -> None:
    print(
        f"  {label}{run.rate:,.0f} responses/s ({run.seconds:.2f} s), p50 {run.percentile_ms(0.5):.1f} ms, "
        f"p99 {run.percentile_ms(0.99):.1f} ms, non-200: {run.failures()}"
    )


async def main() -> None:
    service_env = {
        "SEND_CONCURRENCY": str(SEND_CONCURRENCY),
        "SEND_BATCH_SIZE": str(SEND_BATCH_SIZE),
        # A claimed batch is sent in ceil(batch / concurrency) rounds of at most the SMTP timeout.
        "SENDING_TIMEOUT_SECONDS": "600",
        # Every bench request comes from 127.0.0.1; the per-address limit would answer 429.
        "PUBLIC_RATE_PER_MINUTE": "1000000",
    }
    async with survey_stack("nps-bench-survey-", service_env) as stack:
        dsn, mail_dir, url, secret, smtp_port = (
            stack.dsn,
            stack.mail_dir,
            stack.url,
            stack.secret,
            stack.smtp_port,
        )
        tenant_id = await provision_tenant(stack.bootstrap, url)

        print(
            f"survey delivery: {EMAILS:,} invitations, SEND_CONCURRENCY={SEND_CONCURRENCY}, "
            f"SEND_BATCH_SIZE={SEND_BATCH_SIZE}, tenant rate {TENANT_RATE_PER_MINUTE:,}/min; "
            f"{min(RESPONSES, EMAILS):,} answers, {HTTP_CONCURRENCY} in flight"
        )
        emails, invitation_ids = await project_emails(stack.bootstrap, dsn, mail_dir, tenant_id)
        messages = prerendered(EMAILS, secret, url)
        reused = await baseline_emails("127.0.0.1", smtp_port, mail_dir, messages, reuse_connections=True)
        per_message = await baseline_emails(
            "127.0.0.1", smtp_port, mail_dir, messages, reuse_connections=False
        )
        project_rate = EMAILS / emails.seconds
        print(
            f"  project : survey.requested -> schedule -> render -> SMTP sink: {project_rate:,.0f} emails/s "
            f"({emails.seconds:.2f} s; all recorded sent after {emails.recorded_seconds:.2f} s)"
        )
        print(
            f"  baseline: aiosmtplib, pre-rendered, {SEND_CONCURRENCY} connections kept open:  "
            f"{EMAILS / reused:,.0f} emails/s ({reused:.2f} s)"
        )
        print(
            f"  baseline: aiosmtplib, pre-rendered, a connection per message:   "
            f"{EMAILS / per_message:,.0f} emails/s ({per_message:.2f} s)"
        )
        print(
            f"  ratio   : project / baseline = {project_rate / (EMAILS / reused):.2f} (connections kept), "
            f"{project_rate / (EMAILS / per_message):.2f} (a connection per message)"
        )
        print(f"  sink    : {emails.received:,} invitation emails received, {EMAILS:,} expected")

        answers = min(RESPONSES, EMAILS)
        tokens = [survey_token(secret, invitation_id) for invitation_id in invitation_ids[:answers]]
        forms = [(f"/s/{token}", {"score": str(index % 11)}) for index, token in enumerate(tokens)]
        await warm_up(url, lambda client: client.get(f"/s/{tokens[0]}"))
        project = await post_all(url, forms)

        baseline_process, baseline_port = start_baseline_app(dsn, stack.workdir / "baseline-app.log")
        try:
            await wait_for_port(baseline_port, within=30, alive=lambda: baseline_process.poll() is None)
            baseline_url = f"http://127.0.0.1:{baseline_port}"
            await warm_up(baseline_url, lambda client: client.post("/s/warm-up", data={"score": "10"}))
            baseline = await post_all(baseline_url, forms)
        finally:
            baseline_process.terminate()
            baseline_process.wait(15)
        print(
            f"survey answers: POST /s/{{token}} score=0..10, {answers:,} requests, "
            f"{HTTP_CONCURRENCY} in flight"
        )
        print_http("project : ", project)
        print_http("baseline: Starlette + one asyncpg INSERT: ", baseline)
        print(f"  ratio   : project / baseline = {project.rate / baseline.rate:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-baseline"]:
        serve_baseline(int(sys.argv[2]), os.environ["BENCH_BASELINE_DSN"])
    else:
        asyncio.run(main())
