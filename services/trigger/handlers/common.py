"""What the trigger's handlers share: its internal relationship event, derived invitation ids,
and a tenant's touchpoint rules and rest-period policy."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import StringConstraints

from libs.common import topics
from libs.common.db import UnitOfWork
from libs.common.events import Contract, Email, Identifier, Touchpoint
from services.trigger.config import TriggerSettings
from services.trigger.domain.cohorts import RELATIONSHIP_DUE
from services.trigger.domain.rules import Policy, tenant_policy
from services.trigger.domain.touchpoints import DEFAULT_TOUCHPOINTS, TouchpointRule
from services.trigger.repository import TriggerRepository
from services.trigger.schemas import rule_from_stored

_INVITATION_NAMESPACE = uuid.UUID("7f1c5a52-3d8e-4c59-9a52-6b3f0b1e2d10")


class RelationshipDue(Contract):
    """Internal to the trigger: a contact of an account drawn for a relationship survey this period.
    Producers cannot send it and it never crosses Kafka (so it is no public contract); it exists so
    that cohort invitations pass the same rules and records as purchases and tickets."""

    event_type = RELATIONSHIP_DUE
    #: Never published; named because every contract has a topic: where its peers, contacts, travel.
    topic = topics.CUSTOMERS

    touchpoint: Touchpoint
    period: Annotated[str, StringConstraints(max_length=20)]
    account_id: Identifier
    customer_id: Identifier
    email: Email | None = None


def invitation_id_for(tenant_id: str, event_id: str) -> uuid.UUID:
    """Derived, not random: handling the same event again yields the same invitation."""
    return uuid.uuid5(_INVITATION_NAMESPACE, f"{tenant_id}:{event_id}")


async def tenant_rules(
    uow: UnitOfWork[TriggerRepository], tenant_id: uuid.UUID, settings: TriggerSettings
) -> tuple[list[TouchpointRule], Policy]:
    stored = await uow.repository.active_touchpoints(tenant_id)
    rules = [rule_from_stored(t.name, t.version, t.config) for t in stored] or list(DEFAULT_TOUCHPOINTS)
    return rules, await rest_policy(uow.repository, tenant_id, settings)


async def rest_policy(
    repository: TriggerRepository, tenant_id: uuid.UUID, settings: TriggerSettings
) -> Policy:
    """The tenant's rest period and clock, or the platform's default where it set none."""
    own = await repository.policy(tenant_id)
    return tenant_policy(
        own.rest_period_days if own else None,
        own.rest_clock if own else None,
        default_days=settings.default_rest_period_days,
    )
