"""The `nps` CLI, run as a process against the real database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import StartService
from tests.integration.test_trigger_intake import trigger_with_tenant


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
    assert (code, out.strip()) == (0, "support-followup is now version 1")
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
