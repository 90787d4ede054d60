"""Who may change the report's settings when signed in: a CX manager or an admin of the tenant,
with the session's CSRF token in the ``X-CSRF-Token`` header; anyone else signed in gets 403."""

from __future__ import annotations

import uuid

import pytest
from fastapi import HTTPException, Request

from libs.common.sessions import Person, csrf_token
from services.reporting.api import revenue

TENANT = uuid.UUID(int=7)


def _request(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "PUT", "path": "/v1/reports/settings", "headers": raw})


def _signed_in(monkeypatch: pytest.MonkeyPatch, role: str) -> Person:
    person = Person("s1", TENANT, uuid.UUID(int=8), role, "Ada", "nps_session_token")

    async def current_person(request: Request) -> Person:
        return person

    monkeypatch.setattr(revenue, "current_person", current_person)
    return person


@pytest.mark.parametrize("role", ["cx_manager", "admin"])
async def test_a_cx_manager_or_admin_with_the_csrf_token_may_change_them(
    monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    person = _signed_in(monkeypatch, role)
    request = _request({revenue.CSRF_HEADER: csrf_token(person.token)})
    tenant = await revenue.settings_editor(request, None, None)
    assert (tenant.tenant_id, tenant.key_id) == (TENANT, "session:s1")


@pytest.mark.parametrize("role", ["agent", "team_lead"])
async def test_other_roles_may_not(monkeypatch: pytest.MonkeyPatch, role: str) -> None:
    person = _signed_in(monkeypatch, role)
    with pytest.raises(HTTPException) as refused:
        await revenue.settings_editor(_request({revenue.CSRF_HEADER: csrf_token(person.token)}), None, None)
    assert refused.value.status_code == 403


async def test_a_cookie_without_the_csrf_token_may_not(monkeypatch: pytest.MonkeyPatch) -> None:
    _signed_in(monkeypatch, "admin")
    with pytest.raises(HTTPException) as refused:
        await revenue.settings_editor(_request({revenue.CSRF_HEADER: "forged"}), None, None)
    assert refused.value.status_code == 403
