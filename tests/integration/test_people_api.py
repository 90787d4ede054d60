"""The people API of alerting: users and teams of a tenant, by API key, and nothing of another's."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import ServiceUnderTest, StartService, TestTenant, provision_tenant
from tests.integration.test_alerting_followups import _alerting

pytestmark = pytest.mark.integration


def _address() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}@people.example"


async def _user(sut: ServiceUnderTest, tenant: TestTenant, **fields: Any) -> dict[str, Any]:
    body = {"email": _address(), "name": "Ada Agent", **fields}
    response = await sut.client.post("/v1/users", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_users_are_added_listed_changed_and_deactivated(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    address = _address()

    created = await _user(sut, tenant, email=f"  {address.upper()} ", role="team_lead")
    assert (created["email"], created["name"], created["role"], created["active"]) == (
        address,
        "Ada Agent",
        "team_lead",
        True,
    )
    changed = await sut.client.patch(
        f"/v1/users/{created['id']}", json={"name": "Ada Lead", "active": False}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["active"]) == ("Ada Lead", False)
    fetched = await sut.client.get(f"/v1/users/{created['id']}", headers=tenant.headers)
    assert fetched.json()["name"] == "Ada Lead"

    for _ in range(2):
        await _user(sut, tenant)
    first = await sut.client.get("/v1/users", params={"limit": 2}, headers=tenant.headers)
    assert len(first.json()["users"]) == 2 and first.json()["next_cursor"]
    rest = await sut.client.get(
        "/v1/users", params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=tenant.headers
    )
    assert len(rest.json()["users"]) == 1 and rest.json()["next_cursor"] is None
    listed = {user["id"] for user in first.json()["users"] + rest.json()["users"]}
    assert created["id"] in listed and len(listed) == 3


async def test_a_duplicate_address_or_team_name_is_409_naming_it(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    address = _address()
    await _user(sut, tenant, email=address)

    again = await sut.client.post(
        "/v1/users", json={"email": address.upper(), "name": "Twin"}, headers=tenant.headers
    )
    assert again.status_code == 409
    assert again.json()["error"] == "conflict" and address in again.json()["detail"]

    team = await sut.client.post("/v1/teams", json={"name": "Returns"}, headers=tenant.headers)
    assert team.status_code == 201, team.text
    twin = await sut.client.post("/v1/teams", json={"name": "Returns"}, headers=tenant.headers)
    assert twin.status_code == 409 and "'Returns'" in twin.json()["detail"]


async def test_teams_have_members_and_a_lead(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    lead, agent = await _user(sut, tenant, role="team_lead"), await _user(sut, tenant)

    created = await sut.client.post(
        "/v1/teams", json={"name": "Billing", "lead_user_id": lead["id"]}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    team = created.json()
    for user in (lead, agent, agent):
        added = await sut.client.put(f"/v1/teams/{team['id']}/members/{user['id']}", headers=tenant.headers)
        assert added.status_code == 200, added.text
    assert added.json()["members"] == [lead["id"], agent["id"]]

    renamed = await sut.client.patch(
        f"/v1/teams/{team['id']}", json={"name": "Billing EU", "lead_user_id": None}, headers=tenant.headers
    )
    assert (renamed.json()["name"], renamed.json()["lead_user_id"]) == ("Billing EU", None)
    removed = await sut.client.delete(f"/v1/teams/{team['id']}/members/{agent['id']}", headers=tenant.headers)
    assert removed.status_code == 204
    again = await sut.client.delete(f"/v1/teams/{team['id']}/members/{agent['id']}", headers=tenant.headers)
    assert again.status_code == 404
    listed = await sut.client.get("/v1/teams", headers=tenant.headers)
    assert [(t["name"], t["members"]) for t in listed.json()["teams"]] == [("Billing EU", [lead["id"]])]

    assert (await sut.client.delete(f"/v1/teams/{team['id']}", headers=tenant.headers)).status_code == 204
    assert (await sut.client.get(f"/v1/teams/{team['id']}", headers=tenant.headers)).status_code == 404


async def test_another_tenants_people_are_not_found(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    mine, theirs = await provision_tenant(sut.runtime), await provision_tenant(sut.runtime)
    their_user = await _user(sut, theirs)
    their_team = (await sut.client.post("/v1/teams", json={"name": "Theirs"}, headers=theirs.headers)).json()
    my_team = (await sut.client.post("/v1/teams", json={"name": "Mine"}, headers=mine.headers)).json()

    attempts = [
        sut.client.get(f"/v1/users/{their_user['id']}", headers=mine.headers),
        sut.client.patch(f"/v1/users/{their_user['id']}", json={"active": False}, headers=mine.headers),
        sut.client.get(f"/v1/teams/{their_team['id']}", headers=mine.headers),
        sut.client.patch(f"/v1/teams/{their_team['id']}", json={"name": "x"}, headers=mine.headers),
        sut.client.delete(f"/v1/teams/{their_team['id']}", headers=mine.headers),
        sut.client.put(f"/v1/teams/{my_team['id']}/members/{their_user['id']}", headers=mine.headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"
    lead_elsewhere = await sut.client.patch(
        f"/v1/teams/{my_team['id']}", json={"lead_user_id": their_user["id"]}, headers=mine.headers
    )
    assert lead_elsewhere.status_code == 422 and "lead_user_id" in lead_elsewhere.json()["detail"]
    assert their_user["id"] not in json.dumps(
        (await sut.client.get("/v1/users", headers=mine.headers)).json()
    )
    still = await sut.client.get(f"/v1/users/{their_user['id']}", headers=theirs.headers)
    assert still.json()["active"] is True


async def test_hostile_input_is_refused_naming_the_field(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"email": _address(), "name": "Eve\x00Null"}, "body.name"),
        ({"email": _address(), "name": "x" * 201}, "body.name"),
        ({"email": "not-an-address", "name": "Eve"}, "body.email"),
        ({"email": _address(), "name": "Eve", "role": "owner"}, "body.role"),
        ({"email": _address(), "name": "Eve", "is_admin": True}, "body.is_admin"),
        ({"email": _address(), "name": "   "}, "body.name"),
    ]
    for body, field in cases:
        response = await sut.client.post("/v1/users", content=json.dumps(body), headers=tenant.headers)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.status_code == 422, response.text
        assert field in [problem["field"] for problem in response.json()["problems"]], response.text
    no_key = await sut.client.get("/v1/users")
    assert no_key.status_code == 401
    oversize_team = await sut.client.post("/v1/teams", json={"name": "t" * 101}, headers=tenant.headers)
    assert oversize_team.status_code == 422
