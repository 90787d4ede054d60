"""The trigger's commands and event handlers. They load state, ask the domain, record the results
and the outgoing events in the unit of work, and return. They never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.events import (
    APIKEY_CREATED,
    APIKEY_REVOKED,
    PURCHASE_COMPLETED,
    SURVEY_REQUESTED,
    TENANT_CREATED,
    TICKET_CLOSED,
    ApiKeyCreated,
    ApiKeyRevoked,
    Contract,
    Event,
    PurchaseCompleted,
    SurveyRequested,
    TenantCreated,
    TicketClosed,
    new_event,
)
from libs.common.kafka import RejectEvent
from libs.common.tenancy import NewApiKey, generate_api_key
from services.trigger import repository
from services.trigger.config import TriggerSettings
from services.trigger.domain.rules import Candidate, Decision, decide

SOURCE = "/nps/trigger"
_INVITATION_NAMESPACE = uuid.UUID("7f1c5a52-3d8e-4c59-9a52-6b3f0b1e2d10")
INTAKE_CONSUMER = "intake"
#: The event types the rules decide on today.
ACCEPTED_TYPES = frozenset({PURCHASE_COMPLETED, TICKET_CLOSED})


def invitation_id_for(tenant_id: str, event_id: str) -> uuid.UUID:
    """Derived, not random: handling the same event again yields the same invitation."""
    return uuid.uuid5(_INVITATION_NAMESPACE, f"{tenant_id}:{event_id}")


def _candidate(event: Event[Contract]) -> Candidate:
    data = event.data
    assert isinstance(data, PurchaseCompleted | TicketClosed)
    return Candidate(event_id=event.id, customer_id=data.customer_id, event_type=event.type, email=data.email)


@dataclass(frozen=True)
class IntakeOutcome:
    event: Event[Contract]
    decision: Decision | None  # None: a duplicate of an event already decided

    def as_result(self) -> dict[str, Any]:
        result: dict[str, Any] = {"id": self.event.id}
        if self.decision is None:
            result.update(status="duplicate")
            return result
        result.update(status="accepted", decision=self.decision.outcome.value)
        if self.decision.reason is not None:
            result["reason"] = self.decision.reason.value
        if self.decision.invited:
            result["invitation_id"] = str(invitation_id_for(self.event.tenant_id, self.event.id))
        return result


async def handle_intake(
    events: list[Event[Contract]],
    uow: UnitOfWork,
    *,
    now: datetime,
    settings: TriggerSettings,
) -> list[IntakeOutcome]:
    """For the HTTP edges (events API, webhooks): claim the batch's event ids, decide the new ones,
    report every event in order."""
    fresh = await uow.claim(INTAKE_CONSUMER, events)
    decided = await decide_intake(
        fresh, uow, now=now, default_rest_period_days=settings.default_rest_period_days
    )
    return [IntakeOutcome(event, decided.get((event.tenant_id, event.id))) for event in events]


async def decide_intake(
    events: list[Event[Contract]],
    uow: UnitOfWork,
    *,
    now: datetime,
    default_rest_period_days: int,
) -> dict[tuple[str, str], Decision]:
    """Decide events already claimed as new: one decision each, recorded, invitations emitted."""
    session = uow.session
    tenant_ids = [uuid.UUID(event.tenant_id) for event in events]
    policies = await repository.rest_periods(session, tenant_ids)

    by_tenant: dict[uuid.UUID, list[Event[Contract]]] = {}
    for event in events:
        by_tenant.setdefault(uuid.UUID(event.tenant_id), []).append(event)
    keys = [(uuid.UUID(event.tenant_id), _candidate(event).customer_id) for event in events]
    last_invited = await repository.last_invitations(session, keys)

    decided: dict[tuple[str, str], Decision] = {}
    customer_rows: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    decision_rows: list[dict[str, Any]] = []
    for tenant_id, tenant_events in by_tenant.items():
        rest_days = policies.get(tenant_id, default_rest_period_days)
        clock = {customer: at for (tenant, customer), at in last_invited.items() if tenant == tenant_id}
        candidates = [_candidate(event) for event in tenant_events]
        for event, decision in zip(
            tenant_events, decide(candidates, clock, timedelta(days=rest_days), now), strict=True
        ):
            decided[(event.tenant_id, event.id)] = decision
            invitation_id = invitation_id_for(event.tenant_id, event.id) if decision.invited else None
            key = (tenant_id, decision.candidate.customer_id)
            row = customer_rows.setdefault(
                key,
                {
                    "tenant_id": tenant_id,
                    "customer_id": key[1],
                    "last_invited_at": None,
                    "last_event_at": now,
                },
            )
            if decision.invited:
                row["last_invited_at"] = now
                uow.emit(_survey_requested(event, decision, invitation_id, now))
            decision_rows.append(
                {
                    "tenant_id": tenant_id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "customer_id": decision.candidate.customer_id,
                    "touchpoint": decision.touchpoint,
                    "outcome": decision.outcome.value,
                    "reason": decision.reason.value if decision.reason else None,
                    "invitation_id": invitation_id,
                    "rest_until": decision.rest_until,
                    "rest_period_days": rest_days,
                    "decided_at": now,
                }
            )
    await repository.touch_customers(session, list(customer_rows.values()))
    await repository.record_decisions(session, decision_rows)
    return decided


def _survey_requested(
    event: Event[Contract], decision: Decision, invitation_id: uuid.UUID | None, now: datetime
) -> Event[Contract]:
    data = event.data
    assert isinstance(data, PurchaseCompleted | TicketClosed) and data.email and invitation_id
    request = SurveyRequested(
        invitation_id=invitation_id,
        customer_id=data.customer_id,
        email=data.email,
        name=data.name,
        locale=data.locale,
        touchpoint=decision.touchpoint,
        trigger_event_id=event.id,
        trigger_event_type=event.type,
        send_at=now,
    )
    return new_event(
        SURVEY_REQUESTED,
        tenant_id=event.tenant_id,
        data=request,
        subject=data.customer_id,
        source=SOURCE,
        event_id=str(invitation_id),
        time=now,
    )


async def handle_intake_from_kafka(
    events: list[Event[Contract]], uow: UnitOfWork, *, now: datetime, default_rest_period_days: int
) -> None:
    known = await repository.known_tenants(uow.session, [event.tenant_id for event in events])
    unknown = sorted({event.tenant_id for event in events} - known)
    if unknown:
        raise RejectEvent(f"tenantid: unknown tenant {unknown[0]!r}")
    # The consumer runner has claimed these event ids already, under the same consumer name.
    await decide_intake(events, uow, now=now, default_rest_period_days=default_rest_period_days)


# --- Tenant registry ---------------------------------------------------------------------------


class TenantExists(Exception):
    pass


class UnknownTenant(Exception):
    pass


async def create_tenant(uow: UnitOfWork, *, name: str, owner_email: str | None, now: datetime) -> uuid.UUID:
    if await repository.tenant_by_name_or_id(uow.session, name) is not None:
        raise TenantExists(name)
    tenant_id = uuid.uuid4()
    data = TenantCreated(tenant_id=tenant_id, name=name, owner_email=owner_email, created_at=now)
    await repository.insert_tenant(
        uow.session, {"id": tenant_id, "name": name, "owner_email": owner_email, "created_at": now}
    )
    uow.emit(
        new_event(TENANT_CREATED, tenant_id=str(tenant_id), data=data, subject=str(tenant_id), source=SOURCE)
    )
    return tenant_id


async def create_api_key(uow: UnitOfWork, *, tenant: str, now: datetime) -> tuple[uuid.UUID, NewApiKey]:
    row = await repository.tenant_by_name_or_id(uow.session, tenant)
    if row is None:
        raise UnknownTenant(tenant)
    key = generate_api_key()
    await repository.insert_api_key(
        uow.session, {"key_id": key.key_id, "tenant_id": row.id, "key_hash": key.key_hash, "created_at": now}
    )
    data = ApiKeyCreated(key_id=key.key_id, tenant_id=row.id, key_hash=key.key_hash, created_at=now)
    uow.emit(new_event(APIKEY_CREATED, tenant_id=str(row.id), data=data, subject=str(row.id), source=SOURCE))
    return row.id, key


async def revoke_api_key(uow: UnitOfWork, *, key_id: str, now: datetime) -> bool:
    tenant_id = await repository.revoke_api_key(uow.session, key_id, now)
    if tenant_id is None:
        return False
    data = ApiKeyRevoked(key_id=key_id, tenant_id=tenant_id, revoked_at=now)
    uow.emit(
        new_event(APIKEY_REVOKED, tenant_id=str(tenant_id), data=data, subject=str(tenant_id), source=SOURCE)
    )
    return True
