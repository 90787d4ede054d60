"""The `nps` CLI, run as a process against the real database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

from services.trigger.config import TriggerSettings
from services.trigger.main import build
from tests.conftest import StartService
from tests.support.services import trigger_with_tenant


async def nps(pg_url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.trigger.cli",
        *args,
        env={**os.environ, "DATABASE_URL": pg_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_touchpoints_from_the_cli_are_the_ones_the_api_sees(
    start_service: StartService, pg_url: str, tmp_path: Path
) -> None:
    service, tenant = await trigger_with_tenant(start_service)
    config = tmp_path / "relationship.json"
    config.write_text(
        json.dumps({"event_types": ["ticket.closed.v1"], "delay_minutes": 1440, "sample": {"percent": 25}})
    )
    code, out, _ = await nps(pg_url, "touchpoint", "set", tenant.name, "support-followup", str(config))
    assert (code, out.strip().splitlines()[0]) == (0, "support-followup is now version 1")
    code, out, _ = await nps(pg_url, "touchpoint", "list", tenant.name)
    assert code == 0 and "support-followup  v1" in out
    listed = (await service.client.get("/v1/touchpoints", headers=tenant.headers)).json()["touchpoints"]
    assert [(t["name"], t["version"], t["config"]["delay_minutes"]) for t in listed] == [
        ("support-followup", 1, 1440)
    ]

    config.write_text(json.dumps({"event_types": ["ticket.closed.v1"], "delay_minutes": -5}))
    code, _, err = await nps(pg_url, "touchpoint", "set", tenant.name, "support-followup", str(config))
    assert code == 1 and "delay_minutes" in err
    code, _, err = await nps(pg_url, "touchpoint", "set", "no-such-tenant", "x", str(config))
    assert code == 1 and "no tenant" in err
    code, out, _ = await nps(pg_url, "touchpoint", "retire", tenant.name, "support-followup")
    assert code == 0
    code, out, _ = await nps(
        pg_url, "policy", "set", tenant.name, "--rest-period-days", "90", "--rest-clock", "response"
    )
    assert code == 0
    policy = (await service.client.get("/v1/policy", headers=tenant.headers)).json()
    assert policy == {"rest_period_days": 90, "rest_clock": "response"}


async def nps_with(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """The CLI with exactly `env` added to an environment that has no DATABASE_URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.trigger.cli",
        *args,
        env={**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NPS_DATA_DIR")}, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_without_database_url_the_cli_finds_the_running_stack(pg_url: str, tmp_path: Path) -> None:
    state = tmp_path / "run" / "state.json"
    state.parent.mkdir(parents=True)
    # What the supervisor writes; this test process stands in for a supervisor that is alive.
    state.write_text(json.dumps({"database_url": pg_url, "supervisor_pid": os.getpid()}))
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, err = await nps_with({"NPS_DATA_DIR": str(tmp_path)}, "tenant", "create", name)
    assert (code, err) == (0, "") and out.startswith(f"created tenant {name}")
    code, out, _ = await nps_with({"NPS_DATA_DIR": str(tmp_path)}, "tenant", "list")
    assert code == 0 and f"  {name}  " in out


async def test_without_a_database_the_cli_says_what_to_set_in_one_line(tmp_path: Path) -> None:
    code, out, err = await nps_with({"NPS_DATA_DIR": str(tmp_path)}, "tenant", "list")
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert "DATABASE_URL" in line and str(tmp_path) in line and "make run" in line

    # A state file left by a supervisor that is gone is not a running stack.
    state = tmp_path / "run" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"database_url": "postgresql://postgres@/nps", "supervisor_pid": 2**22 + 1}))
    code, _, err = await nps_with({"NPS_DATA_DIR": str(tmp_path)}, "tenant", "list")
    assert code == 2 and len(err.splitlines()) == 1 and "DATABASE_URL" in err


async def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    url = f"postgresql://postgres:hunter2@/nps?host={tmp_path}"
    code, _, err = await nps_with({"DATABASE_URL": url}, "apikey", "create", "acme")
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("error: database error at postgresql+asyncpg://postgres@/nps")
    assert "hunter2" not in line and "Traceback" not in err


async def test_a_tenant_gets_a_display_name_from_the_cli(start_service: StartService, pg_url: str) -> None:
    await start_service(build, TriggerSettings)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, _ = await nps(pg_url, "tenant", "create", name, "--display-name", "Café Nord")
    assert code == 0 and out.startswith(f"created tenant {name}")
    code, out, _ = await nps(pg_url, "tenant", "update", name, "--display-name", "Café Nord A/S")
    assert (code, out.strip()) == (0, f"updated tenant {name}: display name Café Nord A/S")
    code, _, err = await nps(pg_url, "tenant", "update", "no-such-tenant", "--display-name", "X")
    assert code == 1 and "no tenant" in err
