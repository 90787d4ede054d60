"""Case routing as a CX manager checks it: who gets a detractor's case, and the reason shown on it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from services.alerting.domain.routing import (
    CaseFacts,
    Conditions,
    Directory,
    Member,
    Routed,
    Rule,
    ScoreBand,
    Target,
    Team,
    band_of,
    route,
)

ANA = Member(uuid.UUID("00000000-0000-4000-8000-00000000000a"), "ana@acme.example", active=True)
BO = Member(uuid.UUID("00000000-0000-4000-8000-00000000000b"), "bo@acme.example", active=True)
CARL = Member(uuid.UUID("00000000-0000-4000-8000-00000000000c"), "carl@acme.example", active=True)
DINA_GONE = Member(uuid.UUID("00000000-0000-4000-8000-00000000000d"), "dina@acme.example", active=False)
SUPPORT_DK = Team(uuid.UUID("00000000-0000-4000-8000-0000000000d1"), "Support DK", (ANA, DINA_GONE, BO, CARL))
NOBODY = Team(uuid.UUID("00000000-0000-4000-8000-0000000000e0"), "Night shift", (DINA_GONE,))
OWNER = "owner@acme.example"


def rule(
    position: int,
    name: str,
    target: Target,
    *,
    touchpoints: set[str] | None = None,
    bands: set[ScoreBand] | None = None,
    attributes: Mapping[str, set[str]] | None = None,
    account_owner: bool = False,
    enabled: bool = True,
) -> Rule:
    return Rule(
        id=uuid.uuid5(uuid.NAMESPACE_OID, name),
        name=name,
        position=position,
        conditions=Conditions(
            touchpoints=frozenset(touchpoints) if touchpoints is not None else None,
            bands=frozenset(bands) if bands is not None else None,
            attributes={key: frozenset(values) for key, values in (attributes or {}).items()},
            account_owner=account_owner,
        ),
        target=target,
        enabled=enabled,
    )


def directory(
    teams: tuple[Team, ...] = (SUPPORT_DK, NOBODY),
    *,
    fallback: Target | None = None,
    owner_email: str | None = OWNER,
    open_cases: Mapping[uuid.UUID, int] | None = None,
) -> Directory:
    return Directory.of(
        [ANA, BO, CARL, DINA_GONE], teams, open_cases=open_cases, fallback=fallback, owner_email=owner_email
    )


def case(
    touchpoint: str = "webshop",
    score: int = 3,
    owner: str | None = None,
    **attributes: str,
) -> CaseFacts:
    return CaseFacts(touchpoint=touchpoint, score=score, attributes=attributes, account_owner_email=owner)


def test_scores_0_to_4_are_urgent_and_5_6_normal_and_nothing_else_is_routed() -> None:
    assert [band_of(score) for score in range(7)] == [ScoreBand.URGENT] * 5 + [ScoreBand.NORMAL] * 2
    with pytest.raises(ValueError, match="0-6"):
        band_of(7)
    with pytest.raises(ValueError, match="0-6"):
        case(score=9)


def test_the_reason_tells_which_rule_matched_on_what_and_where_the_case_went() -> None:
    urgent_dk = rule(
        2,
        "Urgent webshop DK",
        Target.team(SUPPORT_DK.id),
        touchpoints={"webshop"},
        bands={ScoreBand.URGENT},
        attributes={"country": {"DK"}},
    )
    routed = route(case(country="DK"), [urgent_dk], directory())
    assert routed == Routed(
        rule_id=urgent_dk.id,
        rule_name="Urgent webshop DK",
        reason='rule 2 "Urgent webshop DK": touchpoint is webshop, score 3 is urgent, country is DK '
        "-> team Support DK (round robin)",
        assignee_user_id=ANA.user_id,
        team_id=SUPPORT_DK.id,
        notify_email=ANA.email,
        team_cursor=(SUPPORT_DK.id, 1),
    )


def test_the_first_matching_rule_by_position_wins_whatever_the_order_given() -> None:
    to_bo = rule(2, "Everything to Bo", Target.user(BO.user_id))
    to_ana = rule(1, "Everything to Ana", Target.user(ANA.user_id))
    routed = route(case(), [to_bo, to_ana], directory())
    assert (routed.rule_name, routed.assignee_user_id) == ("Everything to Ana", ANA.user_id)
    assert routed.reason == 'rule 1 "Everything to Ana": any case -> user ana@acme.example'


def test_a_disabled_rule_is_not_used() -> None:
    rules = [rule(1, "Ana", Target.user(ANA.user_id), enabled=False), rule(2, "Bo", Target.user(BO.user_id))]
    assert route(case(), rules, directory()).assignee_user_id == BO.user_id


def test_touchpoint_and_band_conditions() -> None:
    rules = [
        rule(1, "Support tickets", Target.user(ANA.user_id), touchpoints={"support", "returns"}),
        rule(2, "Urgent", Target.user(BO.user_id), bands={ScoreBand.URGENT}),
        rule(3, "The rest", Target.user(CARL.user_id)),
    ]
    assignee = {
        (touchpoint, score): route(case(touchpoint, score), rules, directory()).assignee_user_id
        for touchpoint in ("support", "webshop")
        for score in (2, 6)
    }
    assert assignee == {
        ("support", 2): ANA.user_id,
        ("support", 6): ANA.user_id,
        ("webshop", 2): BO.user_id,
        ("webshop", 6): CARL.user_id,
    }
    assert route(case("webshop", 6), rules, directory()).reason == (
        'rule 3 "The rest": any case -> user carl@acme.example'
    )


def test_attribute_values_match_ignoring_case_and_spaces_and_a_missing_attribute_does_not_match() -> None:
    nordics = rule(1, "Nordics", Target.user(ANA.user_id), attributes={"country": {"DK", " se "}})
    rules = [nordics, rule(2, "The rest", Target.user(BO.user_id))]
    assert route(case(country="dk"), rules, directory()).assignee_user_id == ANA.user_id
    assert route(case(country=" SE"), rules, directory()).reason == (
        'rule 1 "Nordics": country is SE -> user ana@acme.example'
    )
    assert route(case(country="DE"), rules, directory()).assignee_user_id == BO.user_id
    assert route(case(store="DK"), rules, directory()).assignee_user_id == BO.user_id


def test_every_attribute_of_a_rule_must_hold() -> None:
    rules = [
        rule(1, "DK shoes", Target.user(ANA.user_id), attributes={"country": {"DK"}, "category": {"shoes"}}),
        rule(2, "The rest", Target.user(BO.user_id)),
    ]
    assert route(case(country="DK", category="Shoes"), rules, directory()).assignee_user_id == ANA.user_id
    assert route(case(country="DK", category="hats"), rules, directory()).assignee_user_id == BO.user_id


def test_the_account_owner_condition_needs_an_owner() -> None:
    rules = [
        rule(1, "Key accounts", Target.user(ANA.user_id), account_owner=True),
        rule(2, "The rest", Target.user(BO.user_id)),
    ]
    assert route(case(owner="someone@acme.example"), rules, directory()).reason == (
        'rule 1 "Key accounts": the account has an owner -> user ana@acme.example'
    )
    assert route(case(owner="  "), rules, directory()).assignee_user_id == BO.user_id
    assert route(case(owner=None), rules, directory()).assignee_user_id == BO.user_id


def test_an_account_owner_who_is_an_active_user_is_assigned() -> None:
    owners = rule(1, "Owners", Target.account_owner())
    routed = route(case(owner=" Bo@Acme.example "), [owners], directory())
    assert (routed.assignee_user_id, routed.notify_email) == (BO.user_id, BO.email)
    assert routed.reason == 'rule 1 "Owners": any case -> account owner bo@acme.example'


def test_an_account_owner_who_is_not_an_active_user_is_emailed_but_not_assigned() -> None:
    owners = rule(1, "Owners", Target.account_owner())
    for owner in ("partner@elsewhere.example", DINA_GONE.email):
        routed = route(case(owner=owner), [owners], directory())
        assert (routed.assignee_user_id, routed.notify_email, routed.rule_name) == (None, owner, "Owners")
        assert routed.reason == (
            f'rule 1 "Owners": any case -> account owner {owner}, who is not an active user: '
            "emailed, not assigned"
        )


def test_round_robin_takes_turns_among_active_members_and_skips_inactive_ones() -> None:
    rules = [rule(1, "Support", Target.team(SUPPORT_DK.id, "round_robin"))]
    team = SUPPORT_DK
    assigned = []
    for _ in range(7):
        routed = route(case(), rules, directory((team,)))
        assert routed.team_cursor is not None
        team_id, cursor = routed.team_cursor
        assert team_id == team.id
        assigned.append(routed.assignee_user_id)
        team = Team(team.id, team.name, team.members, cursor)
    assert assigned == [ANA.user_id, BO.user_id, CARL.user_id] * 2 + [ANA.user_id]
    assert DINA_GONE.user_id not in assigned


def test_round_robin_starts_at_the_cursor_and_wraps() -> None:
    rules = [rule(1, "Support", Target.team(SUPPORT_DK.id))]
    # Position 1 is Dina, who left: the turn passes to Bo, and the next turn starts after him.
    at_dina = Team(SUPPORT_DK.id, SUPPORT_DK.name, SUPPORT_DK.members, cursor=1)
    routed = route(case(), rules, directory((at_dina,)))
    assert (routed.assignee_user_id, routed.team_cursor) == (BO.user_id, (SUPPORT_DK.id, 3))
    at_carl = Team(SUPPORT_DK.id, SUPPORT_DK.name, SUPPORT_DK.members, cursor=3)
    routed = route(case(), rules, directory((at_carl,)))
    assert (routed.assignee_user_id, routed.team_cursor) == (CARL.user_id, (SUPPORT_DK.id, 0))
    # A cursor beyond the team (members left since it was stored) still lands on someone.
    stale = Team(SUPPORT_DK.id, SUPPORT_DK.name, SUPPORT_DK.members, cursor=42)
    assert route(case(), rules, directory((stale,))).assignee_user_id in {
        ANA.user_id,
        BO.user_id,
        CARL.user_id,
    }


def test_a_user_deactivated_in_the_directory_gets_no_case_even_if_a_team_lists_them_as_active() -> None:
    ana_gone = Member(ANA.user_id, ANA.email, active=False)
    people = Directory.of([ana_gone, BO], [Team(SUPPORT_DK.id, "Support DK", (ANA, BO))])
    routed = route(case(), [rule(1, "Support", Target.team(SUPPORT_DK.id))], people)
    assert routed.assignee_user_id == BO.user_id


def test_least_loaded_picks_the_member_with_fewest_open_cases_ties_by_team_order() -> None:
    rules = [rule(1, "Support", Target.team(SUPPORT_DK.id, "least_loaded"))]
    load = {ANA.user_id: 5, BO.user_id: 2, CARL.user_id: 3, DINA_GONE.user_id: 0}
    routed = route(case(), rules, directory(open_cases=load))
    assert (routed.assignee_user_id, routed.team_cursor) == (BO.user_id, None)
    assert routed.reason == 'rule 1 "Support": any case -> team Support DK (least loaded)'
    tie = {ANA.user_id: 4, BO.user_id: 2, CARL.user_id: 2}
    assert route(case(), rules, directory(open_cases=tie)).assignee_user_id == BO.user_id
    assert route(case(), rules, directory(open_cases={})).assignee_user_id == ANA.user_id


def test_a_matching_rule_whose_target_cannot_take_the_case_is_passed_over_and_explained() -> None:
    unknown = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
    rules = [
        rule(1, "Night", Target.team(NOBODY.id), bands={ScoreBand.URGENT}),
        rule(2, "Dina", Target.user(DINA_GONE.user_id)),
        rule(3, "Ghost", Target.user(unknown)),
        rule(4, "Gone team", Target.team(unknown)),
        rule(5, "Owners", Target.account_owner()),
        rule(6, "Not for webshop", Target.user(CARL.user_id), touchpoints={"support"}),
        rule(7, "Ana", Target.user(ANA.user_id)),
    ]
    routed = route(case(owner=None), rules, directory())
    assert (routed.rule_name, routed.assignee_user_id) == ("Ana", ANA.user_id)
    assert routed.reason.split("; ") == [
        'rule 1 "Night" matched but team Night shift has no active member',
        'rule 2 "Dina" matched but user dina@acme.example is inactive',
        f'rule 3 "Ghost" matched but user {unknown} is unknown',
        f'rule 4 "Gone team" matched but team {unknown} is unknown',
        'rule 5 "Owners" matched but the account has no owner',
        'rule 7 "Ana": any case -> user ana@acme.example',
    ]


def test_the_fallback_takes_what_no_rule_routes() -> None:
    rules = [rule(1, "Support only", Target.user(ANA.user_id), touchpoints={"support"})]
    routed = route(case(), rules, directory(fallback=Target.team(SUPPORT_DK.id, "least_loaded")))
    assert routed == Routed(
        rule_id=None,
        rule_name=None,
        reason="no rule matched -> fallback team Support DK (least loaded)",
        assignee_user_id=ANA.user_id,
        team_id=SUPPORT_DK.id,
        notify_email=ANA.email,
        team_cursor=None,
    )
    passed_over = route(
        case(), [rule(1, "Dina", Target.user(DINA_GONE.user_id))], directory(fallback=Target.user(BO.user_id))
    )
    assert passed_over.reason == (
        'rule 1 "Dina" matched but user dina@acme.example is inactive; '
        "no other rule matched -> fallback user bo@acme.example"
    )


def test_the_tenants_owner_email_is_the_last_resort() -> None:
    routed = route(case(), [], directory())
    assert routed == Routed(
        rule_id=None,
        rule_name=None,
        reason="no rule matched and no fallback -> the tenant's owner email",
        assignee_user_id=None,
        team_id=None,
        notify_email=OWNER,
        team_cursor=None,
    )
    broken_fallback = route(case(), [], directory(fallback=Target.team(NOBODY.id)))
    assert (broken_fallback.notify_email, broken_fallback.reason) == (
        OWNER,
        "no rule matched and the fallback cannot take it (team Night shift has no active member) "
        "-> the tenant's owner email",
    )


def test_a_case_nobody_can_take_stays_unassigned() -> None:
    routed = route(case(), [rule(1, "Dina", Target.user(DINA_GONE.user_id))], directory(owner_email=" "))
    assert (routed.assignee_user_id, routed.team_id, routed.notify_email) == (None, None, None)
    assert routed.reason == (
        'rule 1 "Dina" matched but user dina@acme.example is inactive; '
        "no other rule matched, no fallback and no owner email -> unassigned"
    )


def test_routing_is_deterministic() -> None:
    rules = [rule(1, "Support", Target.team(SUPPORT_DK.id, "least_loaded"))]
    assert len({route(case(), rules, directory()) for _ in range(20)}) == 1


def test_a_target_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="user target takes a user_id only"):
        Target(Target.user(ANA.user_id).kind, user_id=ANA.user_id, team_id=SUPPORT_DK.id)
    with pytest.raises(ValueError, match="team target"):
        Target(Target.team(SUPPORT_DK.id).kind)
