"""Every shell example in README.md runs as written against the stack `make run` starts.

Each ```sh block runs in bash (`set -euo pipefail`) from a scratch directory that holds a `.venv`
link, with `KEY` the demo key the stack printed, the README's ports (800N) and `.data/` rewritten
to this stack's, `NPS_DATA_DIR` set, and `curl` failing on any HTTP status >= 400. A command that
exits non-zero, or a request that fails, fails the test, naming the block and its output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.alerting.domain.sla import DEFAULT_POLICY, Priority, clock
from tests.support.stack import Stack, stack_launcher, stop

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

#: README lines this test does not run, and why. Keep it tiny: every other line runs.
NOT_RUN = {
    "make run": "the stack this test starts is what it starts",
    "make test": "runs the whole suite, this test included",
    "KEY=nps_...": "a placeholder for the key `make run` printed, which the test exports as KEY",
}

PRELUDE = """\
set -euo pipefail
curl() { command curl --fail-with-body "$@"; }
set -x
"""

SERVICE_OF_PORT = {
    "8001": "trigger",
    "8002": "survey",
    "8003": "scoring",
    "8004": "alerting",
    "8005": "reporting",
}

CUSTOMER_EMAIL = "jane@example.com"


@dataclass
class Context:
    stack: Stack
    key: str

    def get(self, service: str, path: str) -> Any:
        answer = httpx.get(
            f"{self.stack.urls[service]}{path}", headers={"Authorization": f"Bearer {self.key}"}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()


def _email_landed(context: Context) -> bool:
    return len(context.stack.mail_to(CUSTOMER_EMAIL)) == 1


def _nps_is_minus_100(context: Context) -> bool:
    body = context.get("scoring", "/v1/nps")
    return body["nps"] == -100 and body["responses"] == 1  # type: ignore[no-any-return]


def _one_open_case(context: Context) -> bool:
    cases = context.get("alerting", "/v1/cases")["cases"]
    return len(cases) == 1 and cases[0]["status"] == "open"


#: Where the try-it example waits, as a person does between two commands, for what the README
#: promises: before the line that starts so, poll until it holds. Each is an assertion.
WAIT_BEFORE: dict[str, tuple[str, Callable[[Context], bool]]] = {
    "ls .data/mail/": ("the survey email lands in the mail dir", _email_landed),
    "curl -s localhost:8003/v1/nps": ("the NPS is -100 after answering 3", _nps_is_minus_100),
    "curl -s localhost:8004/v1/cases": ("one open case", _one_open_case),
}


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the first line, lines) of each shell block."""
    blocks = []
    for match in re.finditer(r"^```(?:sh|bash|shell|console)\n(.*?)^```$", text, re.M | re.S):
        first = text.count("\n", 0, match.start(1)) + 1
        blocks.append((first, match.group(1).splitlines()))
    return blocks


def _command(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line).strip()


def rewrite(script: str, stack: Stack) -> str:
    def port(match: re.Match[str]) -> str:
        return stack.urls[SERVICE_OF_PORT[match.group(1)]].removeprefix("http://")

    script = re.sub(r"\b(?:localhost|127\.0\.0\.1):(800[1-5])\b", port, script)
    return script.replace(".data/", f"{stack.data_dir}/")


def poll(what: str, condition: Callable[[], bool], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"README example: {what} did not happen within {within:g} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack as `make run` starts it, demo tenant included, on free ports and a temp data dir."""
    launcher = stack_launcher(tmp_path_factory.mktemp("stack"), demo=True, unset=("NPS_DATA_DIR",))
    try:
        yield launcher.start()
    finally:
        stop(launcher.processes)


def _printed_demo_key(stack: Stack) -> str:
    found: list[str] = []

    def printed() -> bool:
        log = (stack.data_dir / "supervisor.log").read_text(errors="replace")
        found.extend(re.findall(r"API key \(tenant demo\): (nps_\S+)", log))
        return bool(found)

    poll("`make run` printing the demo tenant's API key", printed)
    return found[-1]


def test_every_shell_example_in_the_readme_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    context = Context(stack, _printed_demo_key(stack))

    def key_works_everywhere() -> bool:
        paths = [("survey", "/v1/invitations"), ("scoring", "/v1/nps"), ("alerting", "/v1/cases")]
        try:
            for service, path in paths:
                context.get(service, path)
        except httpx.HTTPStatusError:
            return False
        return True

    poll("the demo key working on every service", key_works_everywhere)

    # A scratch working directory, so files an example writes stay out of the checkout.
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SMTP_URL", "NPS_ADMIN_TOKEN")
    }
    env |= {"KEY": context.key, "NPS_DATA_DIR": str(stack.data_dir)}

    blocks = shell_blocks(README.read_text())
    assert len(blocks) >= 3, "README.md has shell examples"
    skipped: set[str] = set()
    waited: set[str] = set()
    outputs: dict[str, str] = {}

    def run(first: int, lines: list[str]) -> None:
        script = "\n".join(lines).strip()
        if not script:
            return
        done = subprocess.run(
            ["bash", "-c", PRELUDE + rewrite(script, stack)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (
            f"README.md line {first}: the example exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        outputs[lines[0]] = done.stdout

    for first, block in blocks:
        segment: list[str] = []
        segment_first = first
        for number, line in enumerate(block, start=first):
            command = _command(line)
            if command in NOT_RUN:
                skipped.add(command)
                continue
            wait = next((w for prefix, w in WAIT_BEFORE.items() if line.startswith(prefix)), None)
            if wait is not None:
                run(segment_first, segment)
                what, condition = wait
                poll(what, partial(condition, context))
                waited.add(what)
                segment, segment_first = [], number
            segment.append(line)
        run(segment_first, segment)

    assert skipped == set(NOT_RUN), f"NOT_RUN names lines the README no longer has: {set(NOT_RUN) - skipped}"
    assert waited == {what for what, _ in WAIT_BEFORE.values()}, "WAIT_BEFORE names lines the README lacks"

    # What the first example promises: one email, NPS -100, one open urgent case.
    [nps_output] = [out for line, out in outputs.items() if line.startswith("curl -s localhost:8003/v1/nps")]
    assert json.loads(nps_output)["nps"] == -100
    assert len(stack.mail_to(CUSTOMER_EMAIL)) == 1
    [case] = context.get("alerting", "/v1/cases")["cases"]
    assert (case["customer_id"], case["score"], case["status"]) == ("c-42", 3, "open")
    # A new tenant's SLA: score 3 is urgent, first contact within 4 business hours (Mon-Fri 09-17 UTC).
    opened = datetime.fromisoformat(case["opened_at"])
    assert (
        datetime.fromisoformat(case["due_at"])
        == clock(opened, Priority.URGENT, DEFAULT_POLICY).first_contact_due
    )
