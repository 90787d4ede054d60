"""Recovery surveys: alerting says a resolved case's recovery survey is due; the trigger decides
(``services/trigger/domain/recovery.py``), records the decision, and asks the survey service."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import datetime

from libs.common.db import UnitOfWork
from libs.common.events import Contract, Event, FollowupRecoveryDue, Money, SurveyContext, SurveyRequested
from services.trigger.domain.recovery import recovery_invitation_id, recovery_outcome
from services.trigger.domain.rules import Outcome
from services.trigger.handlers.spend import spend_snapshots
from services.trigger.repository import CustomerUpdate, DecisionRecord, KnownCustomer, TriggerRepository

log = logging.getLogger(__name__)


async def on_recovery_due(
    events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository], *, now: datetime
) -> None:
    """Decide each due recovery survey, one customer lookup (and one spend query) per tenant in the
    batch."""
    due = [event for event in events if isinstance(event.data, FollowupRecoveryDue)]
    by_tenant: dict[uuid.UUID, list[Event[Contract]]] = defaultdict(list)
    for event in due:
        by_tenant[event.tenant].append(event)
    decisions: list[DecisionRecord] = []
    updates: list[CustomerUpdate] = []
    for tenant_id, tenant_events in by_tenant.items():
        ids = [_data(event).customer_id for event in tenant_events]
        known = {
            customer.customer_id: customer for customer in await uow.repository.load_customers(tenant_id, ids)
        }
        spend = await spend_snapshots(uow, tenant_id, ids, now)
        for event in tenant_events:
            customer_id = _data(event).customer_id
            decision, update = _decide(event, known.get(customer_id), spend.get(customer_id), uow, now)
            decisions.append(decision)
            if update is not None:
                updates.append(update)
    await uow.repository.save_customers(updates)
    await uow.repository.record_decisions(decisions)


def _data(event: Event[Contract]) -> FollowupRecoveryDue:
    assert isinstance(event.data, FollowupRecoveryDue)
    return event.data


def _decide(
    event: Event[Contract],
    customer: KnownCustomer | None,
    spend_12m: list[Money] | None,
    uow: UnitOfWork[TriggerRepository],
    now: datetime,
) -> tuple[DecisionRecord, CustomerUpdate | None]:
    data = _data(event)
    outcome, reason = recovery_outcome(customer.suppressed_at if customer is not None else None)
    invitation_id = recovery_invitation_id(data.case_id) if outcome is Outcome.INVITED else None
    decision = DecisionRecord(
        tenant_id=event.tenant,
        event_id=event.id,
        event_type=event.type,
        customer_id=data.customer_id,
        outcome=outcome.value,
        reason=reason,
        rest_period_days=0,
        decided_at=now,
        touchpoint=data.touchpoint,
        invitation_id=invitation_id,
        send_at=now if invitation_id else None,
        detail=f"recovery survey of case {data.case_id}",
    )
    if invitation_id is None:
        log.info("recovery.skipped", extra={"tenant_id": event.tenant_id, "reason": reason})
        return decision, None
    uow.emit(
        _requested(event, data, invitation_id, customer, now, spend_12m),
        tenant_id=event.tenant_id,
        subject=data.customer_id,
        event_id=str(invitation_id),
        time=now,
    )
    update = CustomerUpdate(
        tenant_id=event.tenant,
        customer_id=data.customer_id,
        last_event_at=now,
        last_invited_at=now,
        outstanding_invitation_id=invitation_id,
    )
    return decision, update


def _requested(
    event: Event[Contract],
    data: FollowupRecoveryDue,
    invitation_id: uuid.UUID,
    customer: KnownCustomer | None,
    now: datetime,
    spend_12m: list[Money] | None = None,
) -> SurveyRequested:
    return SurveyRequested(
        invitation_id=invitation_id,
        customer_id=data.customer_id,
        email=data.email,
        name=data.name or (customer.name if customer is not None else None),
        locale=customer.locale if customer is not None else None,
        touchpoint=data.touchpoint,
        trigger_event_id=event.id,
        trigger_event_type=event.type,
        send_at=now,
        context=SurveyContext(purpose="recovery", recovery_case_id=data.case_id, spend_12m=spend_12m),
    )
