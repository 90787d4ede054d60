"""What a tenant may send as routing rules: hostile or mistaken input is refused with a message that
names the problem, and valid input becomes the rules the domain routes with, and shows back the same."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from services.alerting.domain.routing import Conditions, Rule, ScoreBand, Target
from services.alerting.schemas import (
    FallbackIn,
    RoutingRuleIn,
    RoutingRulesIn,
    RoutingRuleView,
    to_rules,
)

TEAM = "6f1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
USER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def valid_rule(**changes: Any) -> dict[str, Any]:
    return {
        "name": "Urgent webshop DK",
        "when": {"touchpoints": ["webshop"], "bands": ["urgent"], "attributes": {"country": ["DK", "SE"]}},
        "then": {"team": TEAM, "strategy": "least_loaded"},
        **changes,
    }


def refusal(payload: Any, model: type[RoutingRuleIn | RoutingRulesIn | FallbackIn] = RoutingRuleIn) -> str:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(payload)
    return str(refused.value)


def test_a_valid_rule_set_becomes_domain_rules_in_order() -> None:
    payload = {
        "rules": [
            valid_rule(),
            {"name": "Owners", "when": {"account_owner": True}, "then": {"account_owner": True}},
            {"name": "Ana", "then": {"user": USER}, "enabled": False},
            {"name": "Team", "then": {"team": TEAM}},
        ]
    }
    ids = [uuid.uuid4() for _ in payload["rules"]]
    rules = to_rules(RoutingRulesIn.model_validate(payload), ids)
    assert rules[0] == Rule(
        id=ids[0],
        name="Urgent webshop DK",
        position=1,
        conditions=Conditions(
            touchpoints=frozenset({"webshop"}),
            bands=frozenset({ScoreBand.URGENT}),
            attributes={"country": frozenset({"DK", "SE"})},
        ),
        target=Target.team(uuid.UUID(TEAM), "least_loaded"),
    )
    assert [rule.position for rule in rules] == [1, 2, 3, 4]
    assert rules[1].conditions == Conditions(account_owner=True)
    assert rules[1].target == Target.account_owner()
    assert (rules[2].target, rules[2].enabled) == (Target.user(uuid.UUID(USER)), False)
    assert rules[3].target == Target.team(uuid.UUID(TEAM), "round_robin")


def test_the_view_shows_the_rule_as_it_was_sent_with_its_id_and_position() -> None:
    sent = valid_rule()
    rule_id = uuid.uuid4()
    (rule,) = to_rules(RoutingRulesIn.model_validate({"rules": [sent]}), [rule_id])
    shown = RoutingRuleView.of(rule).model_dump(mode="json")
    assert shown == {
        **sent,
        "when": {**sent["when"], "account_owner": False},
        "enabled": True,
        "id": str(rule_id),
        "position": 1,
    }
    # What the API shows can be sent back as it is.
    assert RoutingRuleIn.model_validate({k: v for k, v in shown.items() if k not in ("id", "position")})


def test_ids_must_match_the_rules() -> None:
    with pytest.raises(ValueError, match="2 rules need as many ids, not 1"):
        to_rules(
            RoutingRulesIn.model_validate({"rules": [valid_rule(), valid_rule(name="B")]}), [uuid.uuid4()]
        )


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (valid_rule(priority=1), "priority\n  Extra inputs are not permitted"),
        (valid_rule(when={"touchpoint": ["webshop"]}), "when.touchpoint\n  Extra inputs are not permitted"),
        (valid_rule(then={"team": TEAM, "round_robin": True}), "then.team.round_robin\n  Extra inputs"),
        (valid_rule(then={"user": USER, "team": TEAM}), 'then must be exactly one of {"user": id}'),
        (valid_rule(then={}), 'then must be exactly one of {"user": id}'),
        (valid_rule(then="ana@acme.example"), 'then must be exactly one of {"user": id}'),
        (valid_rule(then={"user": "ana@acme.example"}), "then.user.user\n  Input should be a valid UUID"),
        (valid_rule(then={"team": TEAM, "strategy": "random"}), "then.team.strategy\n  Input should be"),
        (
            valid_rule(then={"account_owner": False}),
            "then.account_owner.account_owner\n  Input should be True",
        ),
        ({"when": {}, "then": {"user": USER}}, "name\n  Field required"),
        (valid_rule(name="   "), "name\n  String should have at least 1 character"),
        (valid_rule(name="x" * 101), "name\n  String should have at most 100 characters"),
        (valid_rule(name="Urgent\x00DK"), "name\n  Value error, must not contain the NUL character"),
        (valid_rule(name="Urgent\x1b[31mDK"), "must not contain control characters (found U+001B)"),
        (
            valid_rule(when={"attributes": {"country": ["DK\x00"]}}),
            "when.attributes.country.0\n  Value error, must not contain the NUL character",
        ),
        (
            valid_rule(when={"attributes": {"Country": ["DK"]}}),
            "when.attributes.Country.[key]\n  String should match pattern '^[a-z][a-z0-9_]{0,39}$'",
        ),
        (valid_rule(when={"attributes": {"x" * 41: ["DK"]}}), "String should match pattern"),
        (
            valid_rule(when={"attributes": {"country": []}}),
            "when.attributes.country\n  List should have at least 1",
        ),
        (
            valid_rule(when={"attributes": {"country": [str(n) for n in range(51)]}}),
            "when.attributes.country\n  List should have at most 50 items",
        ),
        (
            valid_rule(when={"attributes": {"country": ["x" * 201]}}),
            "String should have at most 200 characters",
        ),
        (
            valid_rule(when={"attributes": {f"a{n}": ["x"] for n in range(21)}}),
            "when.attributes\n  Dictionary should have at most 20 items",
        ),
        (valid_rule(when={"touchpoints": ["Web Shop"]}), "when.touchpoints.0\n  String should match pattern"),
        (valid_rule(when={"touchpoints": []}), "when.touchpoints\n  List should have at least 1 item"),
        (valid_rule(when={"bands": ["critical"]}), "when.bands.0\n  Input should be 'urgent' or 'normal'"),
        (valid_rule(enabled="maybe"), "enabled\n  Input should be a valid boolean"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_problem(payload: Any, problem: str) -> None:
    assert problem in refusal(payload)


def test_at_most_200_rules() -> None:
    rules = [valid_rule(name=f"rule {n}") for n in range(201)]
    assert "rules\n  List should have at most 200 items" in refusal({"rules": rules}, RoutingRulesIn)
    assert len(RoutingRulesIn.model_validate({"rules": rules[:200]}).rules) == 200


def test_rule_names_are_unique_ignoring_case() -> None:
    rules = [valid_rule(name="Urgent"), valid_rule(name="Normal"), valid_rule(name="urgent ")]
    assert "rule names must be unique: 'urgent' is the name of rules 1 and 3" in refusal(
        {"rules": rules}, RoutingRulesIn
    )


def test_the_rule_set_refuses_unknown_keys() -> None:
    assert "fallback\n  Extra inputs are not permitted" in refusal(
        {"rules": [], "fallback": None}, RoutingRulesIn
    )


def test_a_fallback_is_a_user_a_team_or_nothing() -> None:
    assert FallbackIn.model_validate(None).to_target() is None
    assert FallbackIn.model_validate({"user": USER}).to_target() == Target.user(uuid.UUID(USER))
    assert FallbackIn.model_validate({"team": TEAM}).to_target() == Target.team(uuid.UUID(TEAM))
    assert FallbackIn.of(Target.team(uuid.UUID(TEAM), "least_loaded")).model_dump(mode="json") == {
        "team": TEAM,
        "strategy": "least_loaded",
    }
    for hostile in ({"account_owner": True}, {"user": USER, "team": TEAM}, "nobody", {}):
        assert 'the fallback must be exactly one of {"user": id}' in refusal(hostile, FallbackIn)
    assert "Extra inputs are not permitted" in refusal({"user": USER, "note": "x"}, FallbackIn)


def test_the_json_shape_is_documented_for_the_api() -> None:
    schema = RoutingRulesIn.model_json_schema()
    rule = schema["$defs"]["RoutingRuleIn"]
    assert rule["additionalProperties"] is False
    assert all(field.get("description") for field in rule["properties"].values())
    assert {"UserTargetIn", "TeamTargetIn", "AccountOwnerTargetIn", "WhenIn"} <= set(schema["$defs"])
