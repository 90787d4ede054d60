"""``nps user`` and ``nps team``, run as processes against the real database: what they add is what
the people API shows."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import StartService, provision_tenant
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_trigger_cli import nps

pytestmark = pytest.mark.integration


async def test_people_and_teams_from_the_cli(start_service: StartService, pg_url: str) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    lead, agent = (f"{who}-{uuid.uuid4().hex[:8]}@cli.example" for who in ("lead", "agent"))

    code, out, err = await nps(
        pg_url, "user", "add", tenant.name, lead.upper(), "--name", "Lee Lead", "--role", "team_lead"
    )
    assert (code, err) == (0, "") and out.startswith(f"added {lead} (")
    code, _, _ = await nps(pg_url, "user", "add", tenant.tenant_id, agent, "--name", "Ann Agent")
    assert code == 0

    code, out, _ = await nps(pg_url, "team", "create", tenant.name, "Returns", "--lead", lead)
    assert code == 0 and out.startswith("created team Returns")
    code, out, _ = await nps(pg_url, "team", "add-member", tenant.name, "Returns", agent)
    assert (code, out.strip()) == (0, f"{agent} joined Returns")
    # Each command is a process of its own (several seconds): what they made is read back by the API.
    teams = (await sut.client.get("/v1/teams", headers=tenant.headers)).json()["teams"]
    assert [(team["name"], len(team["members"])) for team in teams] == [("Returns", 1)]

    code, out, _ = await nps(pg_url, "user", "deactivate", tenant.name, agent)
    assert code == 0 and "deactivated" in out
    users = (await sut.client.get("/v1/users", headers=tenant.headers)).json()["users"]
    assert {user["email"]: user["active"] for user in users} == {lead: True, agent: False}

    code, _, err = await nps(pg_url, "user", "list", "no-such-tenant")
    assert code == 1 and "no tenant 'no-such-tenant'" in err
