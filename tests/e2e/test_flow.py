"""End to end: the stack started as `make run` starts it (supervisor, embedded Postgres, Tansu, SMTP
sink, five service processes), driven over HTTP and SMTP like a user."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.devstack.ports import free_port
from libs.devstack.smtp_sink import read_messages
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    data_dir: Path
    process: subprocess.Popen[bytes]
    urls: dict[str, str]
    admin_token: str

    def state(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "run" / "state.json").read_text())  # type: ignore[no-any-return]

    def pid(self, service: str) -> int:
        return int(self.state()["services"][service]["pid"])

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [m for m in read_messages(self.data_dir / "mail") if address in str(m["To"])]


def _free_port_block(size: int) -> int:
    """A base port such that base+1..base+size are free right now."""
    for _ in range(50):
        base = free_port() - 1
        if base + size < 65000 and all(_is_free(base + i) for i in range(1, size + 1)):
            return base
    raise RuntimeError("no free port block")


def _is_free(port: int) -> bool:
    from libs.devstack.ports import port_is_free

    return port_is_free(port)


@dataclass
class StackLauncher:
    data_dir: Path
    command: list[str]
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> Stack:
        log = (self.data_dir / "supervisor.log").open("ab")
        process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        state = _wait_for_state(self.data_dir, process)
        urls = {name: service["url"] for name, service in state["services"].items()}
        return Stack(self.data_dir, process, urls, (self.data_dir / "admin_token").read_text().strip())


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackLauncher]:
    data_dir = tmp_path_factory.mktemp("stack")
    port_base = _free_port_block(5)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SMTP_URL", "NPS_ADMIN_TOKEN")
    }
    # Long enough for the "why" (posted with the score) to reach the owner's email, short for a test.
    env["NOTIFY_DELAY_SECONDS"] = "3"
    command = [
        sys.executable,
        "-m",
        "libs.devstack.run",
        "--data-dir",
        str(data_dir),
        "--port-base",
        str(port_base),
        "--kafka-port",
        str(free_port()),
        "--smtp-port",
        str(free_port()),
        "--no-demo",
    ]
    launched = StackLauncher(data_dir, command, env)
    yield launched
    # Whatever a failed test left running: the supervisor stops its own children on SIGTERM.
    for process in launched.processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def stack(launcher: StackLauncher) -> Iterator[Stack]:
    started = launcher.start()
    try:
        yield started
    finally:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGTERM)
            try:
                started.process.wait(60)
            except subprocess.TimeoutExpired:
                started.process.kill()


#: What the first test leaves behind for the restart test to find.
REMEMBERED: dict[str, str] = {}


def _wait_for_state(data_dir: Path, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError((data_dir / "supervisor.log").read_text()[-4000:])
        state_file = data_dir / "run" / "state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if all(_ready(s["url"]) for s in state["services"].values()) and len(state["services"]) == 5:
                return state  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(
        "the stack did not become ready:\n" + (data_dir / "supervisor.log").read_text()[-4000:]
    )


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as http:
        yield http


def purchase(customer: str, email: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"order-{uuid.uuid4().hex}",
        "source": "/webshop",
        "type": "purchase.completed.v1",
        "subject": customer,
        "data": {"order_id": uuid.uuid4().hex, "customer_id": customer, "email": email, "locale": "en-GB"},
    }


def survey_links(message: EmailMessage) -> list[str]:
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    return re.findall(r'href="(https?://[^"]+/s/[^"]+/(?:10|[0-9]))"', html.get_content())


async def test_purchase_to_survey_to_nps_to_follow_up_case(stack: Stack, client: httpx.AsyncClient) -> None:
    trigger, survey, scoring, alerting, reporting = (
        stack.urls[n] for n in ("trigger", "survey", "scoring", "alerting", "reporting")
    )
    admin = {"X-Admin-Token": stack.admin_token}
    owner = f"owner-{uuid.uuid4().hex[:6]}@shop.example"
    name = f"shop-{uuid.uuid4().hex[:6]}"
    created = await client.post(
        f"{trigger}/v1/admin/tenants", json={"name": name, "owner_email": owner}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = (await client.post(f"{trigger}/v1/admin/tenants/{name}/api-keys", headers=admin)).json()["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    REMEMBERED["key"] = key

    async def key_works_everywhere() -> bool:
        paths = [
            f"{survey}/v1/invitations?customer=x",
            f"{scoring}/v1/nps",
            f"{alerting}/v1/cases",
            f"{reporting}/v1/reports/summary",
        ]
        statuses = [(await client.get(path, headers=auth)).status_code for path in paths]
        return statuses == [200] * len(paths)

    await eventually(key_works_everywhere, within=30)

    # 1. A purchase over HTTP.
    customer, email = f"c-{uuid.uuid4().hex[:8]}", f"jane-{uuid.uuid4().hex[:6]}@example.com"
    REMEMBERED["customer"] = customer
    posted = await client.post(f"{trigger}/v1/events", json=purchase(customer, email), headers=auth)
    assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited"

    # 2. The email arrives; its links are one-click buttons 0..10. Following one records nothing.
    [message] = await eventually(lambda: _async(stack.mail_to(email)), within=30)
    links = survey_links(message)
    assert len(links) == 11
    page = await client.get(links[3])
    assert page.status_code == 200 and "recommend" in page.text
    invitation = (
        await client.get(f"{survey}/v1/invitations", params={"customer": customer}, headers=auth)
    ).json()
    assert _first_invitation(invitation)["responded_at"] is None

    # 3. Answer 3: NPS -100 and one open case due 24 h after the answer.
    token_url = links[3].rsplit("/", 1)[0]
    answered = await client.post(token_url, data={"score": "3", "comment": "The parcel came a week late."})
    assert answered.status_code == 200

    async def nps_is_minus_100() -> bool:
        body = (await client.get(f"{scoring}/v1/nps", headers=auth)).json()
        return bool(body["nps"] == -100 and body["responses"] == 1)

    await eventually(nps_is_minus_100, within=30)

    async def one_open_case() -> Any:
        cases = (await client.get(f"{alerting}/v1/cases", headers=auth)).json()["cases"]
        return cases if len(cases) == 1 else None

    [case] = await eventually(one_open_case, within=30)
    assert case["status"] == "open" and case["score"] == 3 and case["customer_id"] == customer
    due = datetime.fromisoformat(case["due_at"]) - datetime.fromisoformat(case["opened_at"])
    assert due == timedelta(hours=24)
    [owner_mail] = await eventually(lambda: _async(stack.mail_to(owner)), within=30)
    owner_text = owner_mail.get_body(("plain",))
    assert owner_text is not None and "The parcel came a week late." in owner_text.get_content()

    async def summary_is_complete() -> Any:
        body = (await client.get(f"{reporting}/v1/reports/summary", headers=auth)).json()
        done = body["nps"] == -100 and body["invitations_sent"] == 1 and body["cases"]["open"] == 1
        return body if done else None

    summary = await eventually(summary_is_complete, within=30)
    assert summary["response_rate"] == 1.0

    # 4. A second purchase inside the rest period: no email, and the skip is recorded.
    again = await client.post(f"{trigger}/v1/events", json=purchase(customer, email), headers=auth)
    assert again.json()["results"][0] | {"id": None} == {
        "id": None,
        "status": "accepted",
        "decision": "skipped",
        "reason": "rest_period",
        "touchpoint": "webshop-purchase",
    }
    decisions = (
        await client.get(f"{trigger}/v1/decisions", params={"customer": customer}, headers=auth)
    ).json()
    assert [(d["outcome"], d["reason"]) for d in decisions["decisions"]] == [
        ("skipped", "rest_period"),
        ("invited", None),
    ]

    # 5. kill -9 the survey service, accept a purchase while it is down: after the restart the
    #    pending invitation is sent exactly once.
    survey_pid = stack.pid("survey")
    os.kill(survey_pid, signal.SIGKILL)
    other, other_email = f"c-{uuid.uuid4().hex[:8]}", f"john-{uuid.uuid4().hex[:6]}@example.com"
    posted = await client.post(f"{trigger}/v1/events", json=purchase(other, other_email), headers=auth)
    assert posted.json()["results"][0]["decision"] == "invited"
    await eventually(lambda: _async(stack.pid("survey") != survey_pid and _ready(survey)), within=60)
    await eventually(lambda: _async(stack.mail_to(other_email)), within=60)

    async def both_sent_reported() -> bool:
        body = (await client.get(f"{reporting}/v1/reports/summary", headers=auth)).json()
        return body["invitations_sent"] == 2  # type: ignore[no-any-return]

    await eventually(both_sent_reported, within=30)
    assert len(stack.mail_to(other_email)) == 1
    assert len(stack.mail_to(email)) == 1

    # 6. The closed loop of consent: one click on the email's List-Unsubscribe (RFC 8058) reaches
    #    the trigger, which then never asks that address again, under any customer id.
    [other_message] = stack.mail_to(other_email)
    unsubscribe_url = other_message["List-Unsubscribe"].strip().strip("<>")
    one_click = await client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200

    async def trigger_heard_of_it() -> bool:
        body = (await client.get(f"{trigger}/v1/decisions", params={"customer": other}, headers=auth)).json()
        return any(d["reason"] == "unsubscribed" for d in body["decisions"])

    await eventually(trigger_heard_of_it, within=30)
    new_id = await client.post(
        f"{trigger}/v1/events", json=purchase(f"c-{uuid.uuid4().hex[:8]}", other_email), headers=auth
    )
    assert new_id.json()["results"][0]["reason"] == "unsubscribed"
    assert len(stack.mail_to(other_email)) == 1


def test_stopping_the_stack_stops_every_process(stack: Stack) -> None:
    pids = [service["pid"] for service in stack.state()["services"].values()]
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    leftovers = subprocess.run(["pgrep", "-f", str(stack.data_dir)], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""


def _first_invitation(body: Any) -> dict[str, Any]:
    invitations = body["invitations"] if isinstance(body, dict) else body
    return invitations[0]  # type: ignore[no-any-return]


async def _async(value: Any) -> Any:
    return value


async def test_a_second_run_after_a_stop_keeps_the_data(
    launcher: StackLauncher, client: httpx.AsyncClient
) -> None:
    assert REMEMBERED, "runs after the flow test"
    again = await asyncio.to_thread(launcher.start)
    try:
        auth = {"Authorization": f"Bearer {REMEMBERED['key']}"}
        nps = (await client.get(f"{again.urls['scoring']}/v1/nps", headers=auth)).json()
        assert (nps["nps"], nps["responses"]) == (-100, 1)
        cases = (await client.get(f"{again.urls['alerting']}/v1/cases", headers=auth)).json()["cases"]
        assert [case["customer_id"] for case in cases] == [REMEMBERED["customer"]]
        decisions = await client.get(
            f"{again.urls['trigger']}/v1/decisions", params={"customer": REMEMBERED["customer"]}, headers=auth
        )
        assert len(decisions.json()["decisions"]) == 2
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(again.process.wait, 60) == 0
