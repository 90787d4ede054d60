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
    code, _, err = await nps(pg_url, "user", "add", tenant.name, agent, "--name", "Twin")
    assert code == 1 and agent in err
    code, out, _ = await nps(pg_url, "user", "list", tenant.name)
    assert code == 0 and f"{lead}  Lee Lead  team_lead  active" in out and f"{agent}  Ann Agent  agent" in out

    code, out, _ = await nps(pg_url, "team", "create", tenant.name, "Returns", "--lead", lead)
    assert code == 0 and out.startswith("created team Returns")
    code, out, _ = await nps(pg_url, "team", "add-member", tenant.name, "Returns", agent)
    assert (code, out.strip()) == (0, f"{agent} joined Returns")
    code, out, _ = await nps(pg_url, "team", "list", tenant.name)
    assert code == 0 and f"Returns  lead: {lead}  members: {agent}" in out
    teams = (await sut.client.get("/v1/teams", headers=tenant.headers)).json()["teams"]
    assert [team["name"] for team in teams] == ["Returns"]

    code, out, _ = await nps(pg_url, "user", "deactivate", tenant.name, agent)
    assert code == 0 and "deactivated" in out
    users = (await sut.client.get("/v1/users", headers=tenant.headers)).json()["users"]
    assert {user["email"]: user["active"] for user in users} == {lead: True, agent: False}

    code, _, err = await nps(pg_url, "user", "list", "no-such-tenant")
    assert code == 1 and "no tenant 'no-such-tenant'" in err
    code, _, err = await nps(pg_url, "team", "add-member", tenant.name, "Nope", agent)
    assert code == 1 and "no team 'Nope'" in err
