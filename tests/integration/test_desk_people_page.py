"""The desk's People page over HTTP, as a browser gets it: an admin adds people and teams and
changes them with CSRF-checked forms, which the people API then shows; nobody else may; what is
typed wrong is said on the page; names are shown as text."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from libs.common.sessions import COOKIE, csrf_token
from tests.conftest import ServiceUnderTest, StartService, TestTenant, provision_tenant
from tests.integration.test_alerting_followups import _alerting
from tests.integration.test_case_desk_pages import _browser
from tests.support.desk import make_team, make_user, sign_in_cookie

pytestmark = pytest.mark.integration


async def _admin(sut: ServiceUnderTest, tenant: TestTenant) -> tuple[dict[str, str], str]:
    """A signed-in admin of the tenant: their cookie and their forms' CSRF token."""
    admin = await make_user(sut.runtime, tenant.tenant_id, name="Ada Admin", role="admin")
    cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, admin, role="admin", name="Ada Admin")
    return cookie, csrf_token(cookie[COOKIE])


async def _users(sut: ServiceUnderTest, tenant: TestTenant) -> dict[str, dict[str, Any]]:
    listed = await sut.client.get("/v1/users?limit=200", headers=tenant.headers)
    return {user["email"]: user for user in listed.json()["users"]}


async def _teams(sut: ServiceUnderTest, tenant: TestTenant) -> dict[str, dict[str, Any]]:
    listed = await sut.client.get("/v1/teams?limit=200", headers=tenant.headers)
    return {team["name"]: team for team in listed.json()["teams"]}


def _redirected(answer: httpx.Response) -> None:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/desk/people"


async def test_an_admin_adds_a_person_and_a_team_with_a_member_and_the_api_shows_them(
    start_service: StartService,
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cookie, token = await _admin(sut, tenant)
    async with _browser(sut, cookie) as browser:
        page = await browser.get("/desk/people")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'href="/desk/people"' in page.text and "Ada Admin" in page.text
        for field in ("user-email", "user-name", "user-role", "team-name", "team-lead"):
            assert f'<label for="{field}">' in page.text
        added = await browser.post(
            "/desk/people/users",
            data={"csrf_token": token, "email": " Nia@Example.COM ", "name": "Nia New", "role": "team_lead"},
        )
        _redirected(added)
        nia = (await _users(sut, tenant))["nia@example.com"]
        assert nia["name"] == "Nia New" and nia["role"] == "team_lead" and nia["active"] is True
        team = {"csrf_token": token, "name": "Returns", "lead_user_id": nia["id"]}
        _redirected(await browser.post("/desk/people/teams", data=team))
        returns = (await _teams(sut, tenant))["Returns"]
        assert returns["lead_user_id"] == nia["id"] and returns["members"] == []
        members = f"/desk/people/teams/{returns['id']}/members"
        _redirected(await browser.post(members, data={"csrf_token": token, "user_id": nia["id"]}))
        assert (await _teams(sut, tenant))["Returns"]["members"] == [nia["id"]]
        shown = (await browser.get("/desk/people")).text
        assert "nia@example.com" in shown and "Returns" in shown and "Lead: Nia New" in shown
        assert f'<label for="member-{returns["id"]}">' in shown
        _redirected(await browser.post(f"{members}/{nia['id']}/remove", data={"csrf_token": token}))
        assert (await _teams(sut, tenant))["Returns"]["members"] == []


async def test_another_tenants_people_and_teams_are_not_found(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cookie, token = await _admin(sut, tenant)
    stranger = await provision_tenant(sut.runtime)
    their_user = await make_user(sut.runtime, stranger.tenant_id, name="Theirs")
    their_team = await make_team(sut.runtime, stranger.tenant_id, "Theirs")
    our_team = await make_team(sut.runtime, tenant.tenant_id, "Ours")
    async with _browser(sut, cookie) as browser:
        for path, data in (
            (f"/desk/people/users/{their_user}/deactivate", {}),
            (f"/desk/people/users/{their_user}/role", {"role": "admin"}),
            (f"/desk/people/teams/{their_team}/members", {"user_id": str(their_user)}),
            (f"/desk/people/teams/{our_team}/members", {"user_id": str(their_user)}),
            ("/desk/people/users/not-a-uuid/reactivate", {}),
        ):
            answer = await browser.post(path, data={"csrf_token": token, **data})
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html") and "Not found" in answer.text
    theirs = (await _users(sut, stranger)).values()
    assert [(user["role"], user["active"]) for user in theirs] == [("agent", True)]
    assert (await _teams(sut, tenant))["Ours"]["members"] == []


async def test_changing_a_role_or_deactivating_ends_the_persons_session(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cookie, token = await _admin(sut, tenant)
    agent = await make_user(sut.runtime, tenant.tenant_id, name="Ann Agent")
    base = f"/desk/people/users/{agent}"
    async with _browser(sut, cookie) as admin:
        agents_cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, agent, name="Ann Agent")
        async with _browser(sut, agents_cookie) as ann:
            assert (await ann.get("/desk")).status_code == 200
            _redirected(await admin.post(f"{base}/role", data={"csrf_token": token, "role": "cx_manager"}))
            assert (await ann.get("/desk")).status_code == 303  # sent to sign in again
        (ann_now,) = [user for user in (await _users(sut, tenant)).values() if user["id"] == str(agent)]
        assert ann_now["role"] == "cx_manager"
        agents_cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, agent, role="cx_manager")
        async with _browser(sut, agents_cookie) as ann:
            assert (await ann.get("/desk")).status_code == 200
            _redirected(await admin.post(f"{base}/deactivate", data={"csrf_token": token}))
            ended = await ann.get("/desk")
            assert ended.status_code == 303 and "/signin?next=" in ended.headers["location"]
        page = (await admin.get("/desk/people")).text
        assert "Deactivated" in page and f'action="{base}/reactivate"' in page
        assert not (await sut.client.get(f"/v1/users/{agent}", headers=tenant.headers)).json()["active"]
        _redirected(await admin.post(f"{base}/reactivate", data={"csrf_token": token}))
    assert (await sut.client.get(f"/v1/users/{agent}", headers=tenant.headers)).json()["active"] is True


async def test_only_admins_manage_people_and_every_form_needs_its_token(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cookie, _ = await _admin(sut, tenant)
    for role in ("agent", "cx_manager"):
        user = await make_user(sut.runtime, tenant.tenant_id, role=role)
        their_cookie = await sign_in_cookie(sut.runtime, tenant.tenant_id, user, role=role)
        async with _browser(sut, their_cookie) as browser:
            refused = await browser.get("/desk/people")
            assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
            assert "You may not manage people" in refused.text
            assert 'href="/desk/people"' not in (await browser.get("/desk")).text
            own_token = csrf_token(their_cookie[COOKIE])
            data = {"csrf_token": own_token, "email": f"{role}@example.com", "name": "Sneaky"}
            assert (await browser.post("/desk/people/users", data=data)).status_code == 403
    async with _browser(sut, cookie) as admin:
        forged = await admin.post("/desk/people/users", data={"email": "x@example.com", "name": "X"})
        assert forged.status_code == 403
        wrong = {"csrf_token": "0" * 64, "email": "x@example.com", "name": "X"}
        assert (await admin.post("/desk/people/users", data=wrong)).status_code == 403
    async with _browser(sut) as stranger:
        answer = await stranger.get("/desk/people")
        assert answer.status_code == 303 and "/signin?next=" in answer.headers["location"]
    assert not {"agent@example.com", "cx_manager@example.com", "x@example.com"} & set(
        await _users(sut, tenant)
    )


async def test_what_is_typed_wrong_is_said_on_the_page_and_nothing_is_saved(
    start_service: StartService,
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cookie, token = await _admin(sut, tenant)
    taken = f"taken-{uuid.uuid4().hex[:6]}@example.com"
    async with _browser(sut, cookie) as browser:
        first = {"csrf_token": token, "email": taken, "name": "First"}
        _redirected(await browser.post("/desk/people/users", data=first))
        for fields, status, said in (
            ({"email": taken.upper(), "name": "Second"}, 409, f"A user with the address {taken} exists"),
            ({"email": "not-an-address", "name": "Bad"}, 422, "Email: not a valid email address"),
            ({"email": "empty@example.com", "name": "   "}, 422, "Name: this is required"),
            ({"email": "nul@example.com", "name": "a\x00b"}, 422, "Name: contains a NUL character"),
            ({"email": "long@example.com", "name": "n" * 201}, 422, "Name: at most 200 characters"),
            ({"email": "boss@example.com", "name": "Boss", "role": "boss"}, 422, "Role: choose one"),
        ):
            answer = await browser.post("/desk/people/users", data={"csrf_token": token, **fields})
            assert answer.status_code == status, fields
            assert answer.headers["content-type"].startswith("text/html")
            assert 'role="alert"' in answer.text and "The change was not saved" in answer.text
            assert said in answer.text, fields
        again = await browser.post("/desk/people/teams", data={"csrf_token": token, "name": "Care"})
        _redirected(again)
        unknown = {"csrf_token": token, "name": "Led", "lead_user_id": str(uuid.uuid4())}
        led = await browser.post("/desk/people/teams", data=unknown)
        assert led.status_code == 422 and "Team lead: choose one from the list" in led.text
        twice = await browser.post("/desk/people/teams", data={"csrf_token": token, "name": "Care"})
        assert twice.status_code == 409 and "A team named &#39;Care&#39; exists already" in twice.text
    users = await _users(sut, tenant)
    assert taken in users and len(users) == 2  # the admin and the first, nobody else


async def test_a_name_is_shown_as_text(start_service: StartService) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    cookie, token = await _admin(sut, tenant)
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with _browser(sut, cookie) as browser:
        person = {"csrf_token": token, "email": "xss@example.com", "name": attack}
        _redirected(await browser.post("/desk/people/users", data=person))
        _redirected(await browser.post("/desk/people/teams", data={"csrf_token": token, "name": attack[:90]}))
        page = (await browser.get("/desk/people")).text
    assert attack not in page and attack[:90] not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the desk's own, from /desk/assets/
