"""A consumer batch of answers recorded together (``record_answers``, a few queries for the batch)
leaves the database as the same answers recorded one event at a time do: new detractors, a revision
in the same batch, a mis-click corrected in the same batch, a redelivered version, an answer whose
case an earlier batch opened, a revision that overtook its ``survey.responded``, a promoter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from libs.common.events import SURVEY_RESPONDED, Event, new_event
from services.alerting import handlers
from tests.conftest import ServiceUnderTest, StartService, TestTenant, provision_tenant
from tests.integration.test_alerting_followups import _alerting, _answer, _update
from tests.integration.test_closed_loop import _api, _people

pytestmark = pytest.mark.integration

ROLES = ("new", "revised", "corrected", "redelivered", "earlier", "overtaken", "promoter")


def _scenario(tenant: TestTenant) -> tuple[list[Event[Any]], list[Event[Any]]]:
    """(the events of an earlier batch, the events of the batch under test) for this tenant."""
    answers = {role: _answer(tenant, score=2, customer_id=f"{role}-{tenant.tenant_id}") for role in ROLES}
    answers["promoter"] = _answer(tenant, score=10, customer_id=f"promoter-{tenant.tenant_id}")
    earlier = [answers["earlier"]]
    redelivered = answers["redelivered"]
    batch = [
        answers["new"],
        answers["revised"],
        _update(answers["revised"], revision=2, score=3, comment="Nobody answered the phone."),
        answers["corrected"],
        _update(answers["corrected"], revision=2, score=10, comment=None),
        redelivered,
        # The same version again under another event id: not newer, changes nothing.
        new_event(
            SURVEY_RESPONDED,
            tenant_id=tenant.tenant_id,
            data=redelivered.data,
            subject=redelivered.data.customer_id,
            source="/tests",
        ),
        _update(answers["earlier"], revision=2, score=1, comment="Worse than I said."),
        _update(answers["overtaken"], revision=2, score=4, comment="Late."),
        answers["overtaken"],
        answers["promoter"],
    ]
    return earlier, batch


async def _state(sut: ServiceUnderTest, tenant: TestTenant) -> dict[str, Any]:
    """Per customer role: its answer, case, timeline and notifications, without ids and times."""
    async with sut.runtime.database.uow() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT a.customer_id, a.revision, a.score AS answer_score, "
                "a.customer_email AS answer_email, "
                "c.status, c.resolution, c.score, c.comment, c.customer_email, c.priority, c.owner_email, "
                "(SELECT array_agg(e.kind || ':' || coalesce(e.dedup_key, '') ORDER BY e.id) "
                " FROM alerting.case_events e WHERE e.case_id = c.id) AS timeline, "
                "(SELECT array_agg(n.kind || ':' || n.channel || ':' || (n.failed_at IS NOT NULL) || ':' "
                "  || coalesce(n.last_error, '') || ':' || (n.body LIKE '%Nobody answered%') ORDER BY n.id) "
                " FROM alerting.notifications n WHERE n.case_id = c.id) AS notices "
                "FROM alerting.answers a "
                "LEFT JOIN alerting.followup_cases c ON c.response_id = a.response_id "
                "WHERE a.tenant_id = :tenant"
            ),
            {"tenant": uuid.UUID(tenant.tenant_id)},
        )
        found = {}
        for row in rows.mappings():
            role = row["customer_id"].split("-")[0]
            found[role] = {key: value for key, value in row.items() if key != "customer_id"}
            for key in ("answer_email", "customer_email"):
                if found[role][key] is not None:
                    found[role][key] = found[role][key].split("-")[0]
            if found[role]["owner_email"] == tenant.owner_email:
                found[role]["owner_email"] = "the tenant's owner"
        return found


async def test_a_batch_recorded_together_ends_as_the_same_events_one_at_a_time_do(
    start_service: StartService,
) -> None:
    sut = await _alerting(start_service)
    one_by_one = await provision_tenant(sut.runtime)
    together = await provision_tenant(sut.runtime)
    # The emails wait: the session's notifier must not send them during the test.
    delay = timedelta(minutes=2)
    earlier, batch = _scenario(one_by_one)
    for event in earlier + batch:
        async with sut.runtime.database.uow() as uow:
            await handlers.record_answer(event, uow, now=datetime.now(UTC), notify_delay=delay)
            await uow.commit()
    earlier, batch = _scenario(together)
    for events in (earlier, batch):
        async with sut.runtime.database.uow() as uow:
            await handlers.record_answers(events, uow, now=datetime.now(UTC), notify_delay=delay)
            await uow.commit()

    expected = await _state(sut, one_by_one)
    assert set(expected) == set(ROLES)
    assert expected["revised"]["notices"] == ["case_opened:email:false::true"]
    assert expected["corrected"]["status"] == "resolved"
    assert await _state(sut, together) == expected


async def test_round_robin_takes_turns_within_a_batch_and_the_next_batch_goes_on(
    start_service: StartService,
) -> None:
    sut = await _alerting(start_service)
    tenant = await provision_tenant(sut.runtime)
    people = await _people(sut, tenant)
    team_id = people["team"]["id"]
    rule = {
        "name": "Every urgent one",
        "when": {"bands": ["urgent"]},
        "then": {"team": team_id, "strategy": "round_robin"},
    }
    await _api(sut, tenant, "PUT", "/v1/routing/rules", {"rules": [rule]})
    answers = [_answer(tenant, score=2, customer_id=f"turn{index}-{tenant.tenant_id}") for index in range(4)]
    for events in (answers[:3], answers[3:]):
        async with sut.runtime.database.uow() as uow:
            await handlers.record_answers(
                events, uow, now=datetime.now(UTC), notify_delay=timedelta(minutes=2)
            )
            await uow.commit()

    async with sut.runtime.database.uow() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT customer_id, assignee_user_id FROM alerting.followup_cases "
                "WHERE tenant_id = :tenant ORDER BY customer_id"
            ),
            {"tenant": uuid.UUID(tenant.tenant_id)},
        )
        assignees = [str(row.assignee_user_id) for row in rows]
    first, second = assignees[0], assignees[1]
    assert {first, second} == {people["ana"]["id"], people["bo"]["id"]}
    # The turn the first batch left is where the next one starts.
    assert assignees == [first, second, first, second]
