"""``nps history import TENANT FILE.csv`` run as a real process against the test database."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import StartService
from tests.integration.test_history_import import REST_PERIOD, days_ago, skipped_until
from tests.support.services import trigger_with_tenant

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Finished:
    status: int
    stdout: str
    stderr: str


async def nps(pg_url: str, *args: str, terminal: bool = False) -> Finished:
    """Run the CLI; with ``terminal`` its stderr is a pseudo-terminal, as in an interactive shell."""
    command = [sys.executable, "-m", "services.trigger.cli", *args]
    env = {**os.environ, "DATABASE_URL": pg_url}
    if not terminal:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await process.communicate()
        return Finished(process.returncode or 0, stdout.decode(), stderr.decode())
    controller, terminal_end = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide, and a bar that fits in no columns is empty.
    fcntl.ioctl(terminal_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=terminal_end
        )
        os.close(terminal_end)
        screen = asyncio.create_task(asyncio.to_thread(_read_until_closed, controller))
        stdout, _ = await process.communicate()
        return Finished(process.returncode or 0, stdout.decode(), (await screen).decode(errors="replace"))
    finally:
        os.close(controller)


def _read_until_closed(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the process closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_the_cli_imports_a_file_and_prints_a_summary_with_the_bad_lines(
    start_service: StartService, pg_url: str, tmp_path: Path
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    customers = [f"c-{uuid.uuid4().hex}" for _ in range(3)]
    history = tmp_path / "history.csv"
    history.write_text(
        "customer_id,last_surveyed_at,email\n"
        f"{customers[0]},{days_ago(10).isoformat()},jane@example.com\n"
        f"{customers[1]},2024-13-45,\n"
        f"{customers[1]},{days_ago(30).date().isoformat()},\n"
        f"{customers[2]},{days_ago(200).date().isoformat()},not-an-email\n",
        encoding="utf-8-sig",
    )
    finished = await nps(pg_url, "history", "import", tenant.name, str(history))
    assert finished.status == 0, finished.stderr
    assert finished.stdout.splitlines()[1:] == [
        "rows read: 4; imported: 2; bad rows: 2",
        "customers created: 2; updated: 0; unchanged (surveyed as late or later already): 0",
        "line 3: last_surveyed_at: not a date: '2024-13-45'",
        "line 5: email: not a valid email address: 'not-an-email'",
    ]
    assert tenant.name in finished.stdout.splitlines()[0]
    assert "%|" not in finished.stderr  # no progress bar when stderr is not a terminal
    assert await skipped_until(service, tenant, customers[0]) == days_ago(10) + REST_PERIOD
    assert (
        await skipped_until(service, tenant, customers[1])
        == days_ago(30).replace(hour=0, minute=0, second=0) + REST_PERIOD
    )


async def test_the_cli_refuses_an_unknown_tenant_a_missing_file_and_a_file_without_the_header(
    start_service: StartService, pg_url: str, tmp_path: Path
) -> None:
    _, tenant = await trigger_with_tenant(start_service)
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("c1,2026-01-01\n")
    unknown_tenant, missing_file, no_header = await asyncio.gather(
        nps(pg_url, "history", "import", f"nobody-{uuid.uuid4().hex[:6]}", str(headerless)),
        nps(pg_url, "history", "import", tenant.name, str(tmp_path / "absent.csv")),
        nps(pg_url, "history", "import", tenant.tenant_id, str(headerless)),
    )
    assert (unknown_tenant.status, "no tenant" in unknown_tenant.stderr) == (1, True)
    assert (missing_file.status, "cannot read" in missing_file.stderr) == (1, True)
    assert no_header.status == 1
    assert (
        "lacks the required columns 'customer_id' (or 'customer') and 'last_surveyed_at'" in no_header.stderr
    )


async def test_on_a_terminal_the_cli_shows_a_progress_bar(
    start_service: StartService, pg_url: str, tmp_path: Path
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    prefix = uuid.uuid4().hex[:8]
    history = tmp_path / "big-history.csv"
    surveyed = days_ago(1).isoformat()
    history.write_text(
        "customer;last_surveyed_at\n" + "".join(f"{prefix}-{n};{surveyed}\n" for n in range(12_000))
    )
    finished = await nps(pg_url, "history", "import", tenant.tenant_id, str(history), terminal=True)
    assert finished.status == 0, finished.stderr
    assert "big-history.csv: 100%|" in finished.stderr
    assert "rows read: 12000; imported: 12000; bad rows: 0" in finished.stdout
    assert await skipped_until(service, tenant, f"{prefix}-11999") == days_ago(1) + REST_PERIOD
