"""Routing's promises, whatever the rules, people and teams: no case goes to an inactive user, and the
rule that routes a case is the first enabled one (by position) whose conditions hold and whose target
can take it; when there is none, no rule is named.

The expected rule is worked out here from the definitions, independently of ``route``'s code.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerting.domain.routing import (
    CaseFacts,
    Conditions,
    Directory,
    Member,
    Rule,
    ScoreBand,
    Target,
    Team,
    band_of,
    route,
)

USER_IDS = [uuid.UUID(int=n) for n in range(1, 7)]
TEAM_IDS = [uuid.UUID(int=100 + n) for n in range(3)]
UNKNOWN = uuid.UUID(int=999)
TOUCHPOINTS = ["webshop", "support", "store"]
COUNTRIES = ["DK", "dk ", "SE", "DE"]
EMAILS = [f"user{n}@acme.example" for n in range(len(USER_IDS))] + ["partner@elsewhere.example"]


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    users = [Member(user_id, EMAILS[n], draw(st.booleans())) for n, user_id in enumerate(USER_IDS)]
    teams = [
        Team(
            team_id,
            f"team {n}",
            tuple(draw(st.lists(st.sampled_from(users), max_size=4))),
            draw(st.integers(min_value=0, max_value=10)),
        )
        for n, team_id in enumerate(TEAM_IDS)
    ]
    return Directory.of(
        users,
        teams,
        open_cases=draw(st.dictionaries(st.sampled_from(USER_IDS), st.integers(min_value=0, max_value=5))),
        fallback=draw(st.none() | targets()),
        owner_email=draw(st.none() | st.just("owner@acme.example")),
    )


def targets() -> st.SearchStrategy[Target]:
    return st.one_of(
        st.builds(Target.user, st.sampled_from([*USER_IDS, UNKNOWN])),
        st.builds(
            Target.team,
            st.sampled_from([*TEAM_IDS, UNKNOWN]),
            st.sampled_from(["round_robin", "least_loaded"]),
        ),
        st.just(Target.account_owner()),
    )


def conditions() -> st.SearchStrategy[Conditions]:
    return st.builds(
        Conditions,
        touchpoints=st.none() | st.frozensets(st.sampled_from(TOUCHPOINTS)),
        bands=st.none() | st.frozensets(st.sampled_from(list(ScoreBand))),
        attributes=st.dictionaries(
            st.sampled_from(["country", "store"]), st.frozensets(st.sampled_from(COUNTRIES)), max_size=2
        ),
        account_owner=st.booleans(),
    )


rules = st.lists(
    st.builds(
        Rule,
        id=st.uuids(),
        name=st.sampled_from(["a", "b", "c"]),
        position=st.integers(min_value=1, max_value=8),
        conditions=conditions(),
        target=targets(),
        enabled=st.booleans(),
    ),
    max_size=8,
)

cases = st.builds(
    CaseFacts,
    touchpoint=st.sampled_from(TOUCHPOINTS),
    score=st.integers(min_value=0, max_value=6),
    attributes=st.dictionaries(st.sampled_from(["country", "store"]), st.sampled_from(COUNTRIES)),
    account_owner_email=st.none() | st.sampled_from([*EMAILS, " "]),
)


def holds(conditions: Conditions, facts: CaseFacts) -> bool:
    def same(a: str, b: str) -> bool:
        return a.strip().lower() == b.strip().lower()

    attributes: Mapping[str, str] = facts.attributes
    return (
        (conditions.touchpoints is None or facts.touchpoint in conditions.touchpoints)
        and (conditions.bands is None or band_of(facts.score) in conditions.bands)
        and all(
            name in attributes and any(same(attributes[name], value) for value in values)
            for name, values in conditions.attributes.items()
        )
        and (not conditions.account_owner or bool((facts.account_owner_email or "").strip()))
    )


def can_take(target: Target, facts: CaseFacts, directory: Directory) -> bool:
    if target.user_id is not None:
        return target.user_id in directory.users and directory.users[target.user_id].active
    if target.team_id is not None:
        team = directory.teams.get(target.team_id)
        return team is not None and any(directory.users[member.user_id].active for member in team.members)
    return bool((facts.account_owner_email or "").strip())


@settings(max_examples=300, deadline=None)
@given(facts=cases, rules=rules, directory=directories())
def test_the_first_enabled_rule_that_holds_and_can_take_the_case_routes_it(
    facts: CaseFacts, rules: list[Rule], directory: Directory
) -> None:
    routed = route(facts, rules, directory)

    in_order = sorted((rule for rule in rules if rule.enabled), key=lambda rule: rule.position)
    expected = next(
        (
            rule
            for rule in in_order
            if holds(rule.conditions, facts) and can_take(rule.target, facts, directory)
        ),
        None,
    )
    assert routed.rule_id == (expected.id if expected else None)
    assert routed.rule_name == (expected.name if expected else None)
    if routed.assignee_user_id is not None:
        assert directory.users[routed.assignee_user_id].active
        assert routed.notify_email == directory.users[routed.assignee_user_id].email
    if routed.team_id is not None:
        assert routed.assignee_user_id in {
            member.user_id for member in directory.teams[routed.team_id].members
        }
    if expected is None and directory.fallback is None:
        assert routed.assignee_user_id is None
        assert routed.notify_email == directory.owner_email
