"""Account cohorts: relationship surveys drawn per period."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from libs.common.db import Database, UnitOfWork
from libs.common.events import Contract, Event
from libs.common.jobs import Job
from services.trigger.config import TriggerSettings
from services.trigger.domain.cohorts import draw_accounts
from services.trigger.domain.rules import CustomerState, may_be_asked
from services.trigger.domain.sampling import cycle_of
from services.trigger.domain.touchpoints import TouchpointRule
from services.trigger.handlers.common import RelationshipDue, tenant_rules
from services.trigger.handlers.intake import handle_intake
from services.trigger.repository import Contact, TouchpointClock, TriggerRepository
from services.trigger.schemas import rule_from_stored

if TYPE_CHECKING:
    # Only the type: the runtime module brings FastAPI, which the `nps` CLI (importing the
    # handlers) has no use for.
    from libs.common.service import JobFactory

# The logger keeps the name it had before handlers became a package: log queries filter on it.
log = logging.getLogger("services.trigger.handlers")


async def run_cohorts(uow: UnitOfWork[TriggerRepository], *, now: datetime, settings: TriggerSettings) -> int:
    """Draw this period's accounts for every touchpoint that samples accounts, and decide their
    contacts through the ordinary rules. Idempotent within a period: drawn accounts are recorded,
    and each contact's event id is derived, so a second run the same period adds nothing."""
    invitations = 0
    for stored in await uow.repository.cohort_touchpoints():
        rule = rule_from_stored(stored.name, stored.version, stored.config)
        if rule.accounts_per_period is None:
            continue
        invitations += await _run_cohort(uow, stored.tenant_id, rule, now, settings)
    return invitations


async def _run_cohort(
    uow: UnitOfWork[TriggerRepository],
    tenant_id: uuid.UUID,
    rule: TouchpointRule,
    now: datetime,
    settings: TriggerSettings,
) -> int:
    assert rule.accounts_per_period is not None
    repository = uow.repository
    period = cycle_of(now, rule.sample_cycle)
    await repository.lock_cohort(tenant_id, rule.name)
    state = await repository.cohort_state(tenant_id, rule.name, period)
    wanted = rule.accounts_per_period - state.picked_this_period
    if wanted <= 0:
        return 0
    accounts = await repository.accounts(tenant_id)
    contacts = await repository.contacts(tenant_id, accounts)
    clocks = await repository.touchpoint_clocks(tenant_id, [c.customer_id for c in contacts])
    _, policy = await tenant_rules(uow, tenant_id, settings)
    states = _customer_states(contacts, clocks)
    eligible = {c.account_id for c in contacts if may_be_asked(states[c.customer_id], rule, policy, now)}
    draws = draw_accounts(
        accounts,
        state.picked_in_round,
        state.current_round,
        wanted,
        eligible,
        seed=f"{tenant_id}:{rule.name}",
    )
    picks = [(draw.round, account) for draw in draws for account in draw.accounts]
    if not picks:
        return 0
    await repository.record_picks(tenant_id, rule.name, period, picks, now)
    drawn = {account for _, account in picks}
    due = [
        _relationship_due(uow, tenant_id, rule.name, period, contact, now)
        for contact in contacts
        if contact.account_id in drawn
    ]
    outcomes = await handle_intake(due, uow, now=now, settings=settings)
    return sum(1 for outcome in outcomes if outcome.decision is not None and outcome.decision.invited)


def _customer_states(
    contacts: Sequence[Contact], clocks: Sequence[TouchpointClock]
) -> dict[str, CustomerState]:
    """What the rules need to know of each contact of the tenant's accounts."""
    states: dict[str, CustomerState] = {}
    for contact in contacts:
        states[contact.customer_id] = CustomerState(
            last_invited_at=contact.last_invited_at,
            last_responded_at=contact.last_responded_at,
            suppressed=contact.suppressed_at is not None,
            email=contact.email,
            time_zone=contact.time_zone,
            outstanding_invitation=(
                str(contact.outstanding_invitation_id) if contact.outstanding_invitation_id else None
            ),
        )
    for clock in clocks:
        states[clock.customer_id].touchpoint_invited[clock.touchpoint] = clock.last_invited_at
    return states


def _relationship_due(
    uow: UnitOfWork[TriggerRepository],
    tenant_id: uuid.UUID,
    touchpoint: str,
    period: str,
    contact: Contact,
    now: datetime,
) -> Event[Contract]:
    """A drawn account's contact, as the event the ordinary rules decide (in process: it is never
    emitted). Its id is derived, so a second run in the same period is a duplicate."""
    due = RelationshipDue(
        touchpoint=touchpoint,
        period=period,
        account_id=contact.account_id,
        customer_id=contact.customer_id,
        email=contact.email,
    )
    return uow.event_of(
        due,
        tenant_id=tenant_id,
        subject=contact.customer_id,
        event_id=f"cohort:{touchpoint}:{period}:{contact.account_id}:{contact.customer_id}",
        time=now,
    )


class CohortDraw(Job):
    """Draw every cohort touchpoint's accounts when a period starts (idempotent within a period)."""

    name = "account-cohorts"

    def __init__(self, database: Database[Any], settings: TriggerSettings) -> None:
        self._database = database
        self._settings = settings
        self.every = settings.cohort_check_seconds
        # Wait first: a service that restarts often must not draw before its peers settle.
        self.first_run_after = settings.cohort_check_seconds

    async def run_once(self) -> int:
        async with self._database.uow() as uow:
            invited = await run_cohorts(uow, now=datetime.now(UTC), settings=self._settings)
            await uow.commit()
        if invited:
            log.info("cohorts.invited", extra={"invitations": invited})
        return invited


def cohort_job(settings: TriggerSettings) -> JobFactory:
    return lambda runtime: CohortDraw(runtime.database, settings)
