"""End to end: `make run` brings the stack back when Postgres or Tansu is killed, and while one is
down the services say so at a bounded rate instead of flooding their logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.survey.domain.tokens import survey_token
from tests.conftest import eventually
from tests.e2e.test_flow import survey_links
from tests.support.factories import purchase
from tests.support.stack import Stack, new_tenant, ready, stack_launcher, stop

SERVICES = ("trigger", "survey", "scoring", "alerting", "reporting")
#: What a service may write, on average, while a dependency is down (it wrote 455 a second).
MAX_LINES_PER_SECOND = 5.0
#: Longer than the log filter's 10 s interval, so the repeats it lets through are counted too.
OUTAGE_WINDOW_S = 12.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    launcher = stack_launcher(tmp_path_factory.mktemp("recovery"), unset=("SURVEY_TOKEN_SECRET",))
    started = launcher.start()
    try:
        yield started
    finally:
        stop(launcher.processes)


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as http:
        yield http


def _log_sizes(stack: Stack) -> dict[str, int]:
    return {name: _lines_of(stack.data_dir / "logs" / f"{name}.log") for name in SERVICES}


def _lines_of(path: Path) -> int:
    with path.open("rb") as log:
        return sum(1 for _ in log)


def _lines_since(stack: Stack, name: str, start: int) -> list[str]:
    with (stack.data_dir / "logs" / f"{name}.log").open("rb") as log:
        return [line.decode(errors="replace") for line in log.readlines()[start:]]


def _suppressed(lines: list[str]) -> int:
    total = 0
    for line in lines:
        try:
            total += int(json.loads(line).get("suppressed", 0))
        except (ValueError, AttributeError):
            continue
    return total


async def _in_topic(bootstrap: str, topic: str, needle: bytes) -> bool:
    """Whether a message of `topic` contains `needle`, read without joining a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000)
            if any(needle in (r.value or b"") for records in batches.values() for r in records):
                return True
        return False
    finally:
        await consumer.stop()


async def test_postgres_and_tansu_killed_are_restarted_and_nothing_is_lost(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    trigger, survey = stack.urls["trigger"], stack.urls["survey"]
    auth = await new_tenant(client, stack)

    async def survey_knows_the_key() -> bool:
        response = await client.get(f"{survey}/v1/invitations", params={"customer": "x"}, headers=auth)
        return response.status_code == 200

    await eventually(survey_knows_the_key, within=30)

    def person() -> tuple[str, str]:
        return f"c-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}@example.com"

    # 1. kill -9 the postmaster: the intake answers 503 with Retry-After while it is down, the
    #    supervisor restarts it on the same data dir, and the services reconnect by themselves.
    postgres_pid = int(stack.state()["postgres_pid"])
    customer, email = person()
    event = purchase(customer, email=email, locale="en-GB")
    os.kill(postgres_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    refused = await client.post(f"{trigger}/v1/events", json=event, headers=auth)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "unavailable" and int(refused.headers["Retry-After"]) > 0

    async def accepted_again() -> Any:
        response = await client.post(f"{trigger}/v1/events", json=event, headers=auth)
        return response if response.status_code == 202 else None

    accepted = await eventually(accepted_again, within=60, interval=0.2)
    postgres_back_s = time.monotonic() - killed_at
    assert accepted.json()["results"][0]["decision"] == "invited"
    # The services reconnect as soon as the server is back; the supervisor rewrites state.json once
    # its restart is done, which on a busy machine may be just after (a full run saw the old pid).
    await eventually(lambda: _now(int(stack.state()["postgres_pid"]) != postgres_pid), within=30)
    [message] = await eventually(lambda: _now(stack.mail_to(email)), within=60)
    postgres_mail_s = time.monotonic() - killed_at

    # The links are made with the secret `make run` generated for this data dir, not the fixed
    # development string anyone could use to forge one.
    invitations = (
        await client.get(f"{survey}/v1/invitations", params={"customer": customer}, headers=auth)
    ).json()["invitations"]
    invitation_id = uuid.UUID(invitations[0]["invitation_id"])
    link_token = survey_links(message)[0].rsplit("/", 2)[-2]
    secret = (stack.data_dir / "survey_token_secret").read_text().strip()
    assert link_token == survey_token(secret, invitation_id)
    assert link_token != survey_token("dev-survey-token-secret", invitation_id)

    # 2. An invitation the trigger published but the survey service had not read yet: the survey
    #    service is paused, so the request sits in the broker when the broker is killed.
    bootstrap = stack.state()["kafka"]
    kafka_pid = int(stack.state()["kafka_pid"])
    survey_pid = stack.pid("survey")
    in_flight, in_flight_email = person()
    os.kill(survey_pid, signal.SIGSTOP)
    try:
        posted = await client.post(
            f"{trigger}/v1/events",
            json=purchase(in_flight, email=in_flight_email, locale="en-GB"),
            headers=auth,
        )
        assert posted.json()["results"][0]["decision"] == "invited"
        await eventually(lambda: _in_topic(bootstrap, "nps.survey-requests", in_flight.encode()), within=30)
        os.kill(kafka_pid, signal.SIGKILL)
    finally:
        # Killed while paused: whatever it had fetched already dies with it, so only a re-publication
        # into the new broker can bring that invitation to it.
        os.kill(survey_pid, signal.SIGKILL)
    tansu_killed_at = time.monotonic()
    await eventually(lambda: _now(stack.mail_to(in_flight_email)), within=90)
    tansu_mail_s = time.monotonic() - tansu_killed_at
    # The supervisor rewrites state.json once its restart is done, which may be just after the mail.
    await eventually(lambda: _now(int(stack.state()["kafka_pid"]) != kafka_pid), within=60)
    await eventually(lambda: _now(all(ready(url) for url in stack.urls.values())), within=60)

    # 3. While the broker is down (the supervisor paused, so that it stays down long enough to
    #    measure): purchases are still accepted, into the outbox, and each service writes a bounded
    #    number of lines.
    kafka_pid = int(stack.state()["kafka_pid"])
    stack.process.send_signal(signal.SIGSTOP)
    try:
        os.kill(kafka_pid, signal.SIGKILL)
        during, during_email = person()
        posted = await client.post(
            f"{trigger}/v1/events", json=purchase(during, email=during_email, locale="en-GB"), headers=auth
        )
        assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited"
        before = _log_sizes(stack)
        window_start = time.monotonic()
        await eventually(lambda: _now(time.monotonic() - window_start >= OUTAGE_WINDOW_S), within=30)
        elapsed = time.monotonic() - window_start
        written = {name: _lines_since(stack, name, before[name]) for name in SERVICES}
    finally:
        stack.process.send_signal(signal.SIGCONT)
    resumed_at = time.monotonic()
    rates = {name: round(len(lines) / elapsed, 2) for name, lines in written.items()}
    held_back = {name: round(_suppressed(lines) / elapsed, 1) for name, lines in written.items()}
    print(f"\nlog lines/s while Tansu was down: {rates}\nheld back by the filter, per second: {held_back}")
    assert all(rate < MAX_LINES_PER_SECOND for rate in rates.values()), rates

    # 4. Once the supervisor runs again it restarts Tansu, re-creates the topics and restarts the
    #    services: the invitation accepted meanwhile arrives, and new purchases work as before.
    await eventually(lambda: _now(stack.mail_to(during_email)), within=90)
    second_recovery_s = time.monotonic() - resumed_at
    # The supervisor rewrites state.json once its restart is done, which may be just after the mail.
    await eventually(lambda: _now(int(stack.state()["kafka_pid"]) != kafka_pid), within=60)
    await eventually(lambda: _now(all(ready(url) for url in stack.urls.values())), within=60)
    after, after_email = person()
    posted = await client.post(
        f"{trigger}/v1/events", json=purchase(after, email=after_email, locale="en-GB"), headers=auth
    )
    assert posted.json()["results"][0]["decision"] == "invited"
    await eventually(lambda: _now(stack.mail_to(after_email)), within=60)
    everyone = (email, in_flight_email, during_email, after_email)
    assert [len(stack.mail_to(address)) for address in everyone] == [1, 1, 1, 1]

    # 5. The SMTP sink killed is restarted too, and mail lands in it again.
    sink_pid = int(stack.state()["smtp_sink_pid"])
    os.kill(sink_pid, signal.SIGKILL)
    await eventually(lambda: _now(stack.state()["smtp_sink_pid"] not in (None, sink_pid)), within=30)
    last, last_email = person()
    posted = await client.post(
        f"{trigger}/v1/events", json=purchase(last, email=last_email, locale="en-GB"), headers=auth
    )
    assert posted.json()["results"][0]["decision"] == "invited"
    await eventually(lambda: _now(stack.mail_to(last_email)), within=60)

    # 6. SIGTERM still stops everything, the restarted servers included.
    pids = [int(pid) for pid in (stack.state()["postgres_pid"], stack.state()["kafka_pid"])]
    pids += [service["pid"] for service in stack.state()["services"].values()]
    stack.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(stack.process.wait, 60) == 0
    for pid in pids:
        assert not _alive(pid), pid
    pgrep = await asyncio.create_subprocess_exec(
        "pgrep", "-f", str(stack.data_dir), stdout=asyncio.subprocess.PIPE
    )
    leftovers, _ = await pgrep.communicate()
    assert leftovers.decode().strip() == ""
    print(
        f"postgres: intake back after {postgres_back_s:.1f}s, email after {postgres_mail_s:.1f}s; "
        f"tansu: the in-flight invitation's email {tansu_mail_s:.1f}s after the kill, the one accepted "
        f"while it was down {second_recovery_s:.1f}s after the supervisor resumed"
    )


def _alive(pid: int) -> bool:
    """Running, that is: a zombie waiting for its parent to reap it is not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _now(value: Any) -> Any:
    return value
