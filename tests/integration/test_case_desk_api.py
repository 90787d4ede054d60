"""The case desk over the REST API: every action joins the case's timeline, in order, and nothing on
it is overwritten; the lists filter and page through a tenant's cases; another tenant's cases and
people are not found; what the rules refuse is answered 409 or 422 naming the problem."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common import topics
from libs.common.events import SURVEY_RESPONDED, Event, new_event
from tests.conftest import (
    ServiceUnderTest,
    StartService,
    TestTenant,
    eventually,
    provision_tenant,
    read_topic,
)
from tests.integration.test_alerting_followups import _alerting, _answer, _cases, _publish
from tests.support.desk import make_team, make_user, publish_all

pytestmark = pytest.mark.integration


async def _one_case(sut: ServiceUnderTest, tenant: TestTenant, kafka_bootstrap: str, **answer: Any) -> str:
    await _publish(kafka_bootstrap, _answer(tenant, score=answer.pop("score", 2), **answer))
    (case,) = await eventually(lambda: _cases(sut, tenant), within=30)
    case_id: str = case["id"]
    return case_id


async def _post(sut: ServiceUnderTest, tenant: TestTenant, path: str, body: dict[str, Any]) -> Any:
    return await sut.client.post(path, json=body, headers=tenant.headers)


async def test_actions_join_the_timeline_in_order_and_nothing_is_overwritten(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id = await _one_case(sut, tenant, kafka_bootstrap)
    path = f"/v1/cases/{case_id}"
    team = await make_team(sut.runtime, tenant.tenant_id, "Care")
    ann = await make_user(sut.runtime, tenant.tenant_id, name="Ann Agent", teams=[team])

    assigned = await _post(sut, tenant, f"{path}/assign", {"user_id": str(ann), "team_id": str(team)})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == {"id": str(ann), "name": "Ann Agent"}
    assert assigned.json()["team"] == {"id": str(team), "name": "Care"}
    missed = await _post(sut, tenant, f"{path}/contacts", {"channel": "phone", "outcome": "no_answer"})
    assert missed.json()["status"] == "open" and missed.json()["contacted_at"] is None
    reached = await _post(
        sut,
        tenant,
        f"{path}/contacts",
        {"channel": "phone", "outcome": "reached", "note": "She wants a refund"},
    )
    assert reached.json()["status"] == "contacted" and reached.json()["contacted_at"] is not None
    for text in ("First note", "Second note"):
        assert (await _post(sut, tenant, f"{path}/notes", {"text": text})).status_code == 200
    resolved = await _post(
        sut, tenant, f"{path}/resolve", {"root_cause": "Delivery", "resolution": "Refunded the shipping"}
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["root_cause"] == "Delivery"
    assert resolved.json()["resolution_note"] == "Refunded the shipping"
    again = await _post(sut, tenant, f"{path}/resolve", {"root_cause": "Delivery", "resolution": "again"})
    assert again.status_code == 409 and "from resolved to resolved" in again.json()["detail"]
    reopened = await _post(sut, tenant, f"{path}/reopen", {"reason": "She wrote again"})
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["status"] == "open" and reopened.json()["root_cause"] is None
    assert reopened.json()["reopened_at"] is not None
    assert (await _post(sut, tenant, f"{path}/reopen", {"reason": "twice"})).status_code == 409

    case = (await sut.client.get(path, headers=tenant.headers)).json()
    timeline = case["timeline"]
    # The case's own first lines: it opened, and where routing placed it (no rules: the owner email).
    assert [entry["kind"] for entry in timeline] == [
        "opened", "routed", "assigned", "contact", "contact", "note", "note", "resolved", "reopened"
    ]  # fmt: skip
    assert "no rule matched" in timeline[1]["body"]
    assert [entry["id"] for entry in timeline] == sorted(entry["id"] for entry in timeline)
    assert [entry["body"] for entry in timeline if entry["kind"] == "note"] == ["First note", "Second note"]
    assert timeline[4]["data"] == {
        "channel": "phone",
        "outcome": "reached",
        "first_contact": True,
        "status": "contacted",
    }
    assert timeline[7]["data"]["root_cause"] == "Delivery" and timeline[7]["body"] == "Refunded the shipping"
    assert [entry["actor"] for entry in timeline] == ["system", "system"] + ["API"] * 7
    assert case["note"] == "Second note"

    updates = await read_topic(
        kafka_bootstrap,
        topics.FOLLOWUPS,
        lambda record: (
            json.loads(record.value)["type"] == "followup.updated.v1"
            and json.loads(record.value)["data"]["case_id"] == case_id
        ),
        count=7,
    )
    assert len({json.loads(record.value)["id"] for record in updates}) == 7


async def test_resolving_needs_a_root_cause_from_the_list_and_a_patch_then_appends_too(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id = await _one_case(sut, tenant, kafka_bootstrap)
    path = f"/v1/cases/{case_id}"

    unknown = await _post(sut, tenant, f"{path}/resolve", {"root_cause": "Weather", "resolution": "x"})
    assert unknown.status_code == 422
    assert unknown.json()["problems"][0]["field"] == "body.root_cause"
    assert "Product quality" in unknown.json()["detail"]
    missing = await _post(sut, tenant, f"{path}/resolve", {"resolution": "x"})
    assert missing.status_code == 422 and "root_cause" in missing.text
    blank = await _post(sut, tenant, f"{path}/resolve", {"root_cause": "Price", "resolution": "   "})
    assert blank.status_code == 422 and blank.json()["problems"][0]["field"] == "body.resolution"
    assert (await sut.client.get(path, headers=tenant.headers)).json()["status"] == "open"

    patched = await sut.client.patch(
        path, json={"status": "contacted", "note": "Called"}, headers=tenant.headers
    )
    assert patched.status_code == 200
    assert [(e["kind"], e["body"]) for e in patched.json()["timeline"]][2:] == [("contacted", "Called")]


async def test_notes_are_validated_and_extra_fields_refused(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    case_id = await _one_case(sut, tenant, kafka_bootstrap)
    notes = f"/v1/cases/{case_id}/notes"

    oversize = await _post(sut, tenant, notes, {"text": "x" * 10_001})
    assert oversize.status_code == 422 and oversize.json()["problems"][0]["field"] == "body.text"
    assert (await _post(sut, tenant, notes, {"text": "x" * 10_000})).status_code == 200
    nul = await _post(sut, tenant, notes, {"text": "before\u0000after"})
    assert 400 <= nul.status_code < 500 and "body.text" in nul.text
    blank = await _post(sut, tenant, notes, {"text": "  "})
    assert blank.status_code == 422 and blank.json()["problems"][0]["field"] == "body.text"
    extra = await _post(sut, tenant, notes, {"text": "ok", "author": "me"})
    assert extra.status_code == 422 and "author" in extra.text
    bad_contact = await _post(
        sut, tenant, f"/v1/cases/{case_id}/contacts", {"channel": "fax", "outcome": "reached"}
    )
    assert bad_contact.status_code == 422 and "body.channel" in bad_contact.text
    timeline = (await sut.client.get(f"/v1/cases/{case_id}", headers=tenant.headers)).json()["timeline"]
    assert [len(entry["body"]) for entry in timeline if entry["kind"] == "note"] == [10_000]


async def test_another_tenants_case_and_people_are_not_found(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    stranger = await provision_tenant(sut.runtime)
    case_id = await _one_case(sut, tenant, kafka_bootstrap)
    path = f"/v1/cases/{case_id}"
    their_user = await make_user(sut.runtime, stranger.tenant_id)
    their_team = await make_team(sut.runtime, stranger.tenant_id)

    actions: list[tuple[str, dict[str, Any]]] = [
        ("notes", {"text": "hello"}),
        ("contacts", {"channel": "email", "outcome": "reached"}),
        ("assign", {"user_id": None}),
        ("resolve", {"root_cause": "Price", "resolution": "x"}),
        ("reopen", {"reason": "x"}),
    ]
    for action, body in actions:
        foreign = await _post(sut, stranger, f"{path}/{action}", body)
        assert foreign.status_code == 404, (action, foreign.text)
    assert (await _post(sut, tenant, f"/v1/cases/{uuid.uuid4()}/notes", {"text": "x"})).status_code == 404
    assert (await sut.client.post(f"{path}/notes", json={"text": "x"})).status_code == 401
    user = await _post(sut, tenant, f"{path}/assign", {"user_id": str(their_user)})
    assert user.status_code == 404 and "no user" in user.json()["detail"]
    team = await _post(sut, tenant, f"{path}/assign", {"team_id": str(their_team)})
    assert team.status_code == 404 and "no team" in team.json()["detail"]
    case = (await sut.client.get(path, headers=tenant.headers)).json()
    assert [entry["kind"] for entry in case["timeline"]] == ["opened", "routed"] and case["assignee"] is None


async def test_lists_filter_and_page_through_250_cases_by_due_time(
    start_service: StartService, kafka_bootstrap: str
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    base = datetime.now(UTC) - timedelta(hours=1)
    # Pairs share a due time, so the id decides their order, as the cursor must.
    answers = [
        _at_touchpoint(
            _answer(
                tenant,
                score=index % 7,
                responded_at=base - timedelta(minutes=index // 2),
                customer_id=f"c-{index}-{uuid.uuid4().hex[:6]}",
            ),
            "store" if index % 5 == 0 else "webshop-purchase",
        )
        for index in range(250)
    ]
    await publish_all(kafka_bootstrap, answers)
    await eventually(lambda: _count(sut, tenant, 250), within=60)

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = (await sut.client.get("/v1/cases", params=params, headers=tenant.headers)).json()
        seen += page["cases"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len({case["id"] for case in seen}) == 250
    order = [(case["due_at"], case["id"]) for case in seen]
    assert [(datetime.fromisoformat(due), case_id) for due, case_id in order] == sorted(
        (datetime.fromisoformat(due), case_id) for due, case_id in order
    )

    urgent = await _all(sut, tenant, band="urgent")
    assert urgent and all(case["score"] <= 4 and case["priority"] == "urgent" for case in urgent)
    assert len(urgent) + len(await _all(sut, tenant, band="normal")) == 250
    assert len(await _all(sut, tenant, touchpoint="store")) == 50
    ann = await make_user(sut.runtime, tenant.tenant_id, name="Ann")
    team = await make_team(sut.runtime, tenant.tenant_id)
    first = seen[0]["id"]
    await _post(sut, tenant, f"/v1/cases/{first}/assign", {"user_id": str(ann), "team_id": str(team)})
    await _post(sut, tenant, f"/v1/cases/{first}/contacts", {"channel": "phone", "outcome": "reached"})
    assert [case["id"] for case in await _all(sut, tenant, assignee=str(ann))] == [first]
    assert [case["id"] for case in await _all(sut, tenant, team_id=str(team))] == [first]
    assert [case["id"] for case in await _all(sut, tenant, status="contacted")] == [first]
    assert len(await _all(sut, tenant, assignee="unassigned")) == 249
    for bad in ({"cursor": "nonsense"}, {"assignee": "somebody"}, {"band": "red"}):
        refused = await sut.client.get("/v1/cases", params=bad, headers=tenant.headers)
        assert refused.status_code == 422, (bad, refused.text)


def _at_touchpoint(answer: Event[Any], touchpoint: str) -> Event[Any]:
    data = answer.data.model_copy(update={"touchpoint": touchpoint})
    return new_event(
        SURVEY_RESPONDED, tenant_id=answer.tenant_id, data=data, subject=data.customer_id, source="/tests"
    )


async def _count(sut: ServiceUnderTest, tenant: TestTenant, expected: int) -> bool:
    return len(await _all(sut, tenant)) == expected


async def _all(sut: ServiceUnderTest, tenant: TestTenant, **params: str) -> list[dict[str, Any]]:
    return await _cases(sut, tenant, limit="1000", **params)
