"""Placing a new case: the tenant's routing rules over its people, as the domain decides, and the
round-robin turn stored so the next case goes to the next person."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from libs.common.db import UnitOfWork
from services.alerting.domain.policy import DeskPolicy
from services.alerting.domain.routing import CaseFacts, Directory, Member, Routed, Rule, Team, route
from services.alerting.models import RoutingRule
from services.alerting.repository import AlertingRepository, People
from services.alerting.schemas import RoutingRuleIn


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new case goes: the routing decision, and the names it is shown with."""

    routed: Routed
    assignee_name: str | None
    team_name: str | None


def directory_of(people: People, policy: DeskPolicy, owner_email: str | None) -> Directory:
    """The domain's view of the tenant's people and teams."""
    members = {user.id: Member(user.id, user.email, user.active) for user in people.users.values()}
    teams = [
        Team(
            id=team.id,
            name=team.name,
            members=tuple(members[user] for team_id, user in people.members if team_id == team.id),
            cursor=team.cursor,
        )
        for team in people.teams.values()
    ]
    return Directory.of(
        members.values(),
        teams,
        open_cases=people.open_cases,
        fallback=policy.fallback,
        owner_email=owner_email,
    )


def rule_of(row: RoutingRule) -> Rule:
    """A stored rule as the domain's: ``when`` is kept in ``conditions``, ``then`` in ``target``."""
    payload = {"name": row.name, "when": row.conditions, "then": row.target, "enabled": row.enabled}
    return RoutingRuleIn.model_validate(payload).to_rule(row.id, row.position)


async def place_case(
    uow: UnitOfWork[AlertingRepository],
    tenant_id: uuid.UUID,
    facts: CaseFacts,
    *,
    policy: DeskPolicy,
    owner_email: str | None,
) -> Placement:
    """Route a new case by the tenant's rules as they are now (a change of rules affects only the
    cases opened after it), and take the round-robin turn."""
    repository = uow.repository
    people = await repository.people(tenant_id)
    rules = [rule_of(row) for row in await repository.routing_rules(tenant_id)]
    routed = route(facts, rules, directory_of(people, policy, owner_email))
    if routed.team_cursor is not None:
        team_id, cursor = routed.team_cursor
        await repository.advance_team_cursor(team_id, cursor)
        people.teams[team_id].cursor = cursor
    if routed.assignee_user_id is not None:
        people.open_cases[routed.assignee_user_id] = people.open_cases.get(routed.assignee_user_id, 0) + 1
    assignee = people.users.get(routed.assignee_user_id) if routed.assignee_user_id else None
    team = people.teams.get(routed.team_id) if routed.team_id else None
    return Placement(
        routed=routed,
        assignee_name=assignee.name if assignee is not None else None,
        team_name=team.name if team is not None else None,
    )
