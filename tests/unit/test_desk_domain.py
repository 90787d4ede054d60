"""The case desk's rules (services/alerting/domain/desk.py), and its handlers on the in-memory
repository: what each action does to a case and its timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from libs.common.events import FOLLOWUP_UPDATED
from services.alerting import handlers
from services.alerting.domain import desk
from services.alerting.domain.cases import CaseStatus, InvalidTransition
from services.alerting.domain.desk import Channel, Outcome
from services.alerting.domain.policy import DEFAULT_ROOT_CAUSES
from services.alerting.models import FollowupCase, Team, User
from services.alerting.repository import AlertingRepository
from services.alerting.schemas import desk_policy
from tests.support.alerting_fakes import FakeAlertingRepository
from tests.support.fakes import FakeUnitOfWork

TENANT = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
OTHER_TENANT = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


# --- Contacts --------------------------------------------------------------------------------------


def test_reaching_the_customer_is_the_first_contact_and_moves_an_open_case_on() -> None:
    effect = desk.log_contact(CaseStatus.OPEN, False, Outcome.REACHED)
    assert effect == desk.ContactEffect(CaseStatus.CONTACTED, first_contact=True)


@pytest.mark.parametrize("outcome", [Outcome.LEFT_MESSAGE, Outcome.NO_ANSWER])
def test_an_attempt_that_did_not_reach_them_changes_nothing(outcome: Outcome) -> None:
    assert desk.log_contact(CaseStatus.OPEN, False, outcome) == desk.ContactEffect(CaseStatus.OPEN, False)


def test_only_the_first_reached_contact_counts() -> None:
    assert desk.log_contact(CaseStatus.CONTACTED, True, Outcome.REACHED).first_contact is False


@given(
    status=st.sampled_from(list(CaseStatus)), contacted=st.booleans(), outcome=st.sampled_from(list(Outcome))
)
def test_a_contact_never_moves_a_case_backwards_or_resolves_it(
    status: CaseStatus, contacted: bool, outcome: Outcome
) -> None:
    effect = desk.log_contact(status, contacted, outcome)
    assert effect.status in {status, CaseStatus.CONTACTED}
    assert effect.status is status or status is CaseStatus.OPEN
    assert not (effect.first_contact and contacted)


# --- Resolving and reopening -----------------------------------------------------------------------


def test_resolving_needs_a_root_cause_from_the_list_and_a_resolution() -> None:
    settled = desk.resolve(
        CaseStatus.CONTACTED, "Delivery", "  Refunded the shipping.  ", DEFAULT_ROOT_CAUSES
    )
    assert settled == desk.Resolution(CaseStatus.RESOLVED, "Delivery", "Refunded the shipping.")
    with pytest.raises(desk.InvalidInput) as unknown:
        desk.resolve(CaseStatus.OPEN, "Weather", "x", DEFAULT_ROOT_CAUSES)
    assert unknown.value.field == "root_cause" and "Delivery" in unknown.value.message
    with pytest.raises(desk.InvalidInput) as missing:
        desk.resolve(CaseStatus.OPEN, "Price", "   ", DEFAULT_ROOT_CAUSES)
    assert missing.value.field == "resolution"
    with pytest.raises(desk.InvalidInput):
        desk.resolve(CaseStatus.OPEN, "Price", "x" * 2001, DEFAULT_ROOT_CAUSES)


def test_a_resolved_case_cannot_be_resolved_again_but_can_be_reopened() -> None:
    with pytest.raises(InvalidTransition, match="from resolved to resolved"):
        desk.resolve(CaseStatus.RESOLVED, "Price", "again", DEFAULT_ROOT_CAUSES)
    assert desk.reopen(CaseStatus.RESOLVED) is CaseStatus.OPEN
    for status in (CaseStatus.OPEN, CaseStatus.CONTACTED):
        with pytest.raises(InvalidTransition, match=f"from {status.value} to open"):
            desk.reopen(status)


def test_the_tenants_root_causes_replace_the_defaults() -> None:
    assert desk_policy(None).root_causes == DEFAULT_ROOT_CAUSES
    assert desk_policy({"root_causes": ["Billing", "Courier", "Billing"]}).root_causes == (
        "Billing",
        "Courier",
    )
    with pytest.raises(ValidationError, match="root_causes"):
        desk_policy({"root_causes": []})


# --- Notes -----------------------------------------------------------------------------------------


def test_notes_are_one_to_ten_thousand_characters_without_nul() -> None:
    assert desk.checked_note("x" * 10_000) == "x" * 10_000
    with pytest.raises(desk.InvalidInput, match="at most 10000"):
        desk.checked_note("x" * 10_001)
    with pytest.raises(desk.InvalidInput, match="required"):
        desk.checked_note("  \n ")
    with pytest.raises(desk.InvalidInput, match="NUL"):
        desk.checked_note("before\x00after")


# --- Who sees what ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str

    @property
    def sees_all(self) -> bool:
        return self.role != "agent"


@dataclass(frozen=True)
class _Case:
    tenant_id: uuid.UUID
    assignee_user_id: uuid.UUID | None
    team_id: uuid.UUID | None


def test_agents_see_their_own_and_their_teams_cases_only() -> None:
    me, colleague, team, other_team = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    agent = _Person(TENANT, me, "agent")
    assert desk.visible(agent, _Case(TENANT, me, None), ())
    assert desk.visible(agent, _Case(TENANT, colleague, team), (team,))
    assert not desk.visible(agent, _Case(TENANT, colleague, other_team), (team,))
    assert not desk.visible(agent, _Case(TENANT, None, None), (team,))


@pytest.mark.parametrize("role", ["team_lead", "cx_manager", "admin"])
def test_other_roles_see_all_of_their_tenants_cases_and_nobody_sees_another_tenants(role: str) -> None:
    person = _Person(TENANT, uuid.uuid4(), role)
    assert desk.visible(person, _Case(TENANT, None, None), ())
    assert not desk.visible(person, _Case(OTHER_TENANT, person.user_id, None), ())
    assert not desk.visible(
        _Person(TENANT, person.user_id, "agent"), _Case(OTHER_TENANT, person.user_id, None), ()
    )


def test_bands_and_cursors() -> None:
    assert [desk.band(score).value for score in (0, 4, 5, 6)] == ["urgent", "urgent", "normal", "normal"]
    cursor = desk.Cursor(NOW, uuid.uuid4())
    assert desk.Cursor.decode(cursor.encode()) == cursor
    for broken in ("", "not-a-cursor", "W10", "WyIyMDI2LTAzLTAyVDEwOjAwOjAwIiwgIngiXQ"):
        with pytest.raises(desk.InvalidInput):
            desk.Cursor.decode(broken)


# --- The handlers on the in-memory repository ------------------------------------------------------


def _desk() -> tuple[FakeAlertingRepository, FakeUnitOfWork[AlertingRepository], FollowupCase]:
    repository = FakeAlertingRepository({TENANT: "owner@acme.example"})
    case = FollowupCase(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id="c-1",
        touchpoint="webshop",
        score=2,
        status="open",
        opened_at=NOW - timedelta(hours=1),
        due_at=NOW + timedelta(hours=23),
        updated_at=NOW,
    )
    repository.cases[case.id] = case
    return repository, FakeUnitOfWork(repository), case


def _user(repository: FakeAlertingRepository, tenant_id: uuid.UUID, name: str) -> User:
    user = User(
        id=uuid.uuid4(), tenant_id=tenant_id, email=f"{name}@x.example", name=name, role="agent", active=True
    )
    repository.users[user.id] = user
    return user


async def test_each_action_appends_to_the_timeline_and_emits_its_own_update() -> None:
    repository, uow, case = _desk()
    actor = handlers.Actor("Ann Agent", uuid.uuid4())
    ann = _user(repository, TENANT, "Ann")
    team = Team(id=uuid.uuid4(), tenant_id=TENANT, name="Care")
    repository.teams[team.id] = team
    common: dict[str, Any] = {"uow": uow, "tenant_id": TENANT, "case_id": case.id, "actor": actor}
    async with uow:
        await handlers.assign(**common, user_id=ann.id, team_id=team.id, now=NOW)
        await handlers.log_contact(
            **common, channel=Channel.PHONE, outcome=Outcome.NO_ANSWER, note=None, now=NOW
        )
        assert case.status == "open" and case.contacted_at is None
        await handlers.log_contact(
            **common, channel=Channel.PHONE, outcome=Outcome.REACHED, note="ok", now=NOW
        )
        assert case.status == "contacted" and case.contacted_at == NOW
        await handlers.add_note(**common, text="First note", now=NOW)
        await handlers.add_note(**common, text="Second note", now=NOW)
        await handlers.resolve(**common, root_cause="Delivery", resolution="Refunded", now=NOW)
        await handlers.reopen(**common, reason="She wrote again", now=NOW)
        await uow.commit()
    kinds = [event.kind for event in repository.case_events]
    assert kinds == ["assigned", "contact", "contact", "note", "note", "resolved", "reopened"]
    assert [event.body for event in repository.case_events if event.kind == "note"] == [
        "First note",
        "Second note",
    ]
    assert {event.actor for event in repository.case_events} == {"Ann Agent"}
    assert case.status == "open" and case.root_cause is None and case.reopened_at == NOW
    updates = [event for event in uow.events if event.envelope.type == FOLLOWUP_UPDATED]
    assert len({event.envelope.id for event in updates}) == len(updates) == 7


async def test_another_tenants_user_or_team_is_not_found() -> None:
    repository, uow, case = _desk()
    stranger = _user(repository, OTHER_TENANT, "Stranger")
    async with uow:
        with pytest.raises(handlers.NotInTenant, match="no user"):
            await handlers.assign(
                uow,
                tenant_id=TENANT,
                case_id=case.id,
                actor=handlers.API_ACTOR,
                user_id=stranger.id,
                team_id=None,
                now=NOW,
            )
        with pytest.raises(handlers.NotInTenant, match="no team"):
            await handlers.assign(
                uow,
                tenant_id=TENANT,
                case_id=case.id,
                actor=handlers.API_ACTOR,
                user_id=None,
                team_id=uuid.uuid4(),
                now=NOW,
            )
    assert case.assignee_user_id is None and repository.case_events == []
