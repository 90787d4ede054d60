"""The rules of people and signing in: roles, addresses, the links' lifetime and rate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.alerting.domain import people
from services.alerting.domain.people import Role
from services.alerting.models import ROLES

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_the_roles_are_the_ones_the_table_allows() -> None:
    assert tuple(role.value for role in Role) == ROLES


def test_agents_see_their_own_and_their_teams_cases_the_others_all() -> None:
    me, team, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def sees(role: Role, assignee: uuid.UUID | None, case_team: uuid.UUID | None) -> bool:
        return role.may_see_case(user_id=me, team_ids=frozenset({team}), assignee=assignee, team=case_team)

    assert sees(Role.AGENT, me, None) and sees(Role.AGENT, None, team)
    assert not sees(Role.AGENT, other, other) and not sees(Role.AGENT, None, None)
    for role in (Role.TEAM_LEAD, Role.CX_MANAGER, Role.ADMIN):
        assert sees(role, other, other) and role.sees_all_cases
    assert [role for role in Role if role.manages_people] == [Role.ADMIN]


def test_an_address_is_stripped_and_lower_cased() -> None:
    assert people.normalise_email("  Jane.Doe@Example.COM \n") == "jane.doe@example.com"


@given(st.text(max_size=40))
def test_normalising_is_idempotent(address: str) -> None:
    once = people.normalise_email(address)
    assert people.normalise_email(once) == once


def test_only_plausible_addresses_are_looked_up() -> None:
    assert people.looks_like_email("jane@example.com")
    for bad in ("", "jane", "jane@", "@example.com", "ja ne@example.com", "jane@example", "a\x00@b.cd"):
        assert not people.looks_like_email(bad), bad
    assert not people.looks_like_email("a" * 320 + "@example.com")


def test_a_link_works_once_and_for_fifteen_minutes() -> None:
    expires = people.link_expires_at(NOW)
    assert expires - NOW == timedelta(minutes=15)
    assert people.link_usable(expires_at=expires, used_at=None, now=expires - timedelta(seconds=1))
    assert not people.link_usable(expires_at=expires, used_at=None, now=expires)
    assert not people.link_usable(expires_at=expires, used_at=NOW, now=NOW)


def test_at_most_five_links_in_the_window() -> None:
    assert [people.may_send_link(sent) for sent in range(7)] == [True] * 5 + [False] * 2
    assert NOW - people.sign_in_window_start(NOW) == timedelta(minutes=15)


def test_a_session_lasts_twelve_hours_unless_set_otherwise() -> None:
    assert people.session_expires_at(NOW) == NOW + timedelta(hours=12)
    assert people.session_expires_at(NOW, timedelta(hours=1)) == NOW + timedelta(hours=1)
