"""HTTP routes of a tenant's case-desk settings and routing rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from libs.common.db import UnitOfWork
from libs.common.deps import Tenant, unit_of_work
from libs.common.http import error_responses
from services.alerting.domain.routing import Target, TargetKind
from services.alerting.handlers.routing import rule_of
from services.alerting.models import RoutingRule
from services.alerting.repository import AlertingRepository
from services.alerting.schemas import DeskSettingsIn, RoutingRulesIn, RoutingRuleView, to_rules

router = APIRouter(tags=["desk settings"])

Uow = Annotated[UnitOfWork[AlertingRepository], Depends(unit_of_work)]


@router.get("/v1/desk/settings")
async def get_desk_settings(tenant: Tenant, uow: Uow) -> DeskSettingsIn:
    """The tenant's case-desk settings: business hours (with public holidays by country), SLA targets
    per priority, the reminder and escalation times, root causes, the recovery survey, the routing
    fallback, who hears of the second escalation and the daily digest. A new tenant has the defaults."""
    return DeskSettingsIn.model_validate(await uow.repository.desk_config(tenant.tenant_id) or {})


@router.put("/v1/desk/settings", responses=error_responses(422))
async def put_desk_settings(tenant: Tenant, uow: Uow, settings: DeskSettingsIn) -> DeskSettingsIn:
    """Replace the tenant's case-desk settings; a part left out takes the default. New SLA times apply
    to cases opened from now on and to the next steps of open ones."""
    policy = settings.to_policy()
    if policy.fallback is not None:
        await _require_known(uow, tenant.tenant_id, [policy.fallback])
    config: dict[str, Any] = settings.model_dump(mode="json")
    await uow.repository.save_desk_config(tenant.tenant_id, config, datetime.now(UTC))
    await uow.commit()
    return settings


class RoutingRules(BaseModel):
    rules: list[RoutingRuleView] = Field(description="in the order they are tried")


@router.get("/v1/routing/rules")
async def get_routing_rules(tenant: Tenant, uow: Uow) -> RoutingRules:
    """The tenant's routing rules, first tried first."""
    rows = await uow.repository.routing_rules(tenant.tenant_id)
    return RoutingRules(rules=[RoutingRuleView.of(rule_of(row)) for row in rows])


@router.put("/v1/routing/rules", responses=error_responses(422))
async def put_routing_rules(tenant: Tenant, uow: Uow, body: RoutingRulesIn) -> RoutingRules:
    """Replace the tenant's routing rules. A new case goes to the first enabled rule whose conditions
    all hold and whose target can take it; then the fallback of the desk settings; then the tenant's
    owner email. Cases already open keep where they are: a change affects only new cases. Every case
    records which rule placed it and why."""
    rules = to_rules(body, [uuid.uuid4() for _ in body.rules])
    await _require_known(uow, tenant.tenant_id, [rule.target for rule in rules])
    now = datetime.now(UTC)
    rows = [
        RoutingRule(
            id=rule.id,
            tenant_id=tenant.tenant_id,
            position=rule.position,
            name=rule.name,
            conditions=view.when.model_dump(mode="json", exclude_none=True),
            target=view.then.model_dump(mode="json"),
            enabled=rule.enabled,
            created_at=now,
        )
        for rule, view in ((rule, RoutingRuleView.of(rule)) for rule in rules)
    ]
    await uow.repository.replace_routing_rules(tenant.tenant_id, rows)
    await uow.commit()
    return RoutingRules(rules=[RoutingRuleView.of(rule) for rule in rules])


async def _require_known(uow: Uow, tenant_id: uuid.UUID, targets: list[Target]) -> None:
    """A target must be one of the tenant's own users or teams: another tenant's id is unknown here."""
    users = {target.user_id for target in targets if target.kind is TargetKind.USER and target.user_id}
    teams = {target.team_id for target in targets if target.kind is TargetKind.TEAM and target.team_id}
    known_users, known_teams = await uow.repository.known_people(tenant_id, users, teams)
    unknown = [f"user {user}" for user in sorted(users - known_users, key=str)] + [
        f"team {team}" for team in sorted(teams - known_teams, key=str)
    ]
    if unknown:
        raise HTTPException(422, f"no such {', '.join(unknown)} in this tenant")
