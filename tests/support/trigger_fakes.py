"""An in-memory :class:`TriggerRepository`, for unit tests that drive the trigger's handlers.

It overrides every query intake makes and keeps the state in dicts, with the semantics of the
statements it replaces: clocks only move forward (``GREATEST``), a missing detail never erases a
known one (``coalesce``), a cancellation or invitation once recorded stays. A query it does not
override fails loudly, since the fake has no session.

Hand it to :class:`tests.support.fakes.FakeUnitOfWork`. Like a database without transactions it
keeps writes whether or not the unit of work commits: tests commit after every batch.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeVar

from libs.common.events import (
    PURCHASE_COMPLETED,
    SURVEY_REQUESTED,
    TICKET_CLOSED,
    Contract,
    Event,
    PurchaseCompleted,
    SurveyRequested,
    TicketClosed,
    new_event,
)
from libs.common.privacy import DEV_PRIVACY_HASH_KEY
from services.trigger.config import TriggerSettings
from services.trigger.domain.consent import address_record
from services.trigger.handlers.intake import IntakeOutcome, handle_intake
from services.trigger.models import Customer, Erasure, Touchpoint
from services.trigger.repository import (
    Answered,
    ClosedInvitation,
    ConsentChange,
    CustomerSpend,
    CustomerUpdate,
    DecisionRecord,
    KnownCustomer,
    PendingInvitation,
    PurchaseRecord,
    SourceUpdate,
    StoredPolicy,
    StoredSource,
    TouchpointClock,
    TriggerRepository,
)
from tests.support.fakes import FakeUnitOfWork

CustomerKey = tuple[uuid.UUID, str]
T = TypeVar("T")


def _coalesce(first: T | None, second: T | None) -> T | None:
    return first if first is not None else second


def _latest(stored: datetime | None, arriving: datetime | None) -> datetime | None:
    """``GREATEST`` in Postgres: the later of the two, ignoring a missing one."""
    if stored is None or arriving is None:
        return stored or arriving
    return max(stored, arriving)


class FakeTriggerRepository(TriggerRepository):
    def __init__(self) -> None:
        # No session: a query this fake does not override fails on ``self.session``.
        self.tenants: set[str] = set()
        self.policies: dict[uuid.UUID, StoredPolicy] = {}
        self.touchpoints: dict[uuid.UUID, list[Touchpoint]] = {}
        self.customers: dict[CustomerKey, Customer] = {}
        self.clocks: dict[tuple[uuid.UUID, str, str], datetime] = {}
        self.sources: dict[tuple[uuid.UUID, str, str], SourceUpdate] = {}
        self.quota: dict[tuple[uuid.UUID, str, date], int] = {}
        self.decisions: list[DecisionRecord] = []
        #: The purchases ledger, by (tenant, order): the first recorded stays.
        self.purchases: dict[tuple[uuid.UUID, str], PurchaseRecord] = {}
        #: Every batch of (tenant, customer) subjects intake locked, in order.
        self.locked: list[list[tuple[str, str]]] = []
        #: Erasure receipts, which are also the tombstones intake checks.
        self.erasures: list[Erasure] = []

    # --- Policies, touchpoints, tenants ---------------------------------------------------------

    async def policy(self, tenant_id: uuid.UUID) -> StoredPolicy | None:
        return self.policies.get(tenant_id)

    async def set_rest_period(self, tenant_id: uuid.UUID, days: int, clock: str | None = None) -> None:
        stored = self.policies.get(tenant_id)
        self.policies[tenant_id] = StoredPolicy(
            days, clock or (stored.rest_clock if stored else "invitation")
        )

    async def active_touchpoints(self, tenant_id: uuid.UUID) -> list[Touchpoint]:
        return [t for t in self.touchpoints.get(tenant_id, []) if t.retired_at is None]

    async def known_tenants(self, tenant_ids: Sequence[str]) -> set[str]:
        return set(tenant_ids) & self.tenants

    async def lock_customers(self, subjects: Iterable[tuple[str, str]]) -> None:
        self.locked.append(list(subjects))

    # --- Erasures -------------------------------------------------------------------------------

    async def erased_until(self, tenant_id: uuid.UUID, customer_keys: Iterable[str]) -> dict[str, datetime]:
        wanted = set(customer_keys)
        latest: dict[str, datetime] = {}
        for erasure in self.erasures:
            if erasure.tenant_id == tenant_id and erasure.customer_key in wanted:
                known = latest.get(erasure.customer_key)
                latest[erasure.customer_key] = (
                    max(known, erasure.requested_at) if known else erasure.requested_at
                )
        return latest

    async def add_erasure(self, erasure: Erasure) -> None:
        self.erasures.append(erasure)

    async def erase_customer(self, tenant_id: uuid.UUID, customer_id: str) -> dict[str, int]:
        customer = self.customers.get((tenant_id, customer_id))
        if customer is not None:
            customer.email = customer.name = customer.locale = customer.time_zone = None
            customer.account_id = customer.account_owner_email = None
            customer.attributes = None
        bought = [
            key
            for key, record in self.purchases.items()
            if key[0] == tenant_id and record.customer_id == customer_id
        ]
        for key in bought:
            del self.purchases[key]
        return {"customers": int(customer is not None), "purchases": len(bought)}

    # --- Customers ------------------------------------------------------------------------------

    def _customer(self, tenant_id: uuid.UUID, customer_id: str, seen: datetime) -> Customer:
        key = (tenant_id, customer_id)
        if key not in self.customers:
            self.customers[key] = Customer(tenant_id=tenant_id, customer_id=customer_id, last_event_at=seen)
        return self.customers[key]

    async def load_customers(self, tenant_id: uuid.UUID, customer_ids: Iterable[str]) -> list[KnownCustomer]:
        found = (self.customers.get((tenant_id, c)) for c in sorted(set(customer_ids)))
        return [
            KnownCustomer(
                c.customer_id,
                c.last_invited_at,
                c.last_responded_at,
                c.email,
                c.name,
                c.locale,
                c.time_zone,
                c.suppressed_at,
                c.outstanding_invitation_id,
                c.account_id,
                c.account_owner_email,
                c.attributes,
            )
            for c in found
            if c is not None
        ]

    async def save_customers(self, customers: Sequence[CustomerUpdate]) -> None:
        for update in customers:
            stored = self._customer(update.tenant_id, update.customer_id, update.last_event_at)
            stored.last_event_at = update.last_event_at
            stored.last_invited_at = _latest(stored.last_invited_at, update.last_invited_at)
            stored.email = _coalesce(update.email, stored.email)
            stored.name = _coalesce(update.name, stored.name)
            stored.locale = _coalesce(update.locale, stored.locale)
            stored.time_zone = _coalesce(update.time_zone, stored.time_zone)
            stored.account_id = _coalesce(update.account_id, stored.account_id)
            stored.account_owner_email = _coalesce(update.account_owner_email, stored.account_owner_email)
            stored.attributes = _coalesce(update.attributes, stored.attributes)
            stored.outstanding_invitation_id = _coalesce(
                update.outstanding_invitation_id, stored.outstanding_invitation_id
            )

    async def close_invitations(self, closed: Sequence[ClosedInvitation]) -> None:
        for invitation in closed:
            stored = self.customers.get((invitation.tenant_id, invitation.customer_id))
            if stored is not None and stored.outstanding_invitation_id == invitation.invitation_id:
                stored.outstanding_invitation_id = None

    async def set_consent(self, tenant_id: uuid.UUID, change: ConsentChange, at: datetime) -> None:
        is_new = (tenant_id, change.customer_id) not in self.customers
        stored = self._customer(tenant_id, change.customer_id, at)
        stored.suppressed_at = change.suppressed_at
        stored.suppression_reason = change.reason
        stored.email = change.email if is_new else _coalesce(stored.email, change.email)

    async def suppress_by_email(
        self, tenant_id: uuid.UUID, email: str, reason: str, at: datetime
    ) -> list[str]:
        matching = [
            c for (t, _), c in self.customers.items() if t == tenant_id and _same_email(c.email, email)
        ]
        for stored in matching:
            stored.suppressed_at = at
            stored.suppression_reason = reason
        return [c.customer_id for c in matching]

    async def set_responded(self, answers: Sequence[Answered]) -> None:
        for answer in answers:
            stored = self._customer(answer.tenant_id, answer.customer_id, answer.responded_at)
            stored.last_responded_at = _latest(stored.last_responded_at, answer.responded_at)

    async def suppressed_emails(self, tenant_id: uuid.UUID, emails: Iterable[str]) -> set[str]:
        wanted = {email.lower() for email in emails}
        # The records kept by hash, with the key a TriggerSettings() has.
        records = {address_record(DEV_PRIVACY_HASH_KEY, email): email for email in wanted}
        return {
            c.email.lower()
            for (t, _), c in self.customers.items()
            if t == tenant_id and c.email and c.email.lower() in wanted and c.suppressed_at is not None
        } | {
            records[c.customer_id]
            for (t, _), c in self.customers.items()
            if t == tenant_id and c.customer_id in records and c.suppressed_at is not None
        }

    async def customers_with_email(self, tenant_id: uuid.UUID, email: str) -> list[str]:
        return [
            c.customer_id
            for (t, _), c in self.customers.items()
            if t == tenant_id and _same_email(c.email, email)
        ]

    # --- Touchpoint clocks, source records, quota -----------------------------------------------

    async def touchpoint_clocks(
        self, tenant_id: uuid.UUID, customer_ids: Iterable[str]
    ) -> list[TouchpointClock]:
        wanted = set(customer_ids)
        return [
            TouchpointClock(customer, touchpoint, at)
            for (t, customer, touchpoint), at in sorted(self.clocks.items())
            if t == tenant_id and customer in wanted
        ]

    async def save_touchpoint_clocks(self, tenant_id: uuid.UUID, clocks: Sequence[TouchpointClock]) -> None:
        for clock in clocks:
            key = (tenant_id, clock.customer_id, clock.touchpoint)
            self.clocks[key] = _latest(self.clocks.get(key), clock.last_invited_at) or clock.last_invited_at

    async def load_sources(self, tenant_id: uuid.UUID, refs: Iterable[str]) -> list[StoredSource]:
        wanted = set(refs)
        return [
            StoredSource(s.source_ref, s.touchpoint, s.customer_id, s.invitation_id, s.cancelled_at)
            for (t, ref, _), s in sorted(self.sources.items())
            if t == tenant_id and ref in wanted
        ]

    async def pending_invitations(
        self, tenant_id: uuid.UUID, customer_ids: Iterable[str], since: datetime
    ) -> list[PendingInvitation]:
        wanted = set(customer_ids)
        return [
            PendingInvitation(s.source_ref, s.touchpoint, s.customer_id, s.invitation_id)
            for (t, _, _), s in sorted(self.sources.items())
            if t == tenant_id
            and s.customer_id in wanted
            and s.invitation_id is not None
            and s.cancelled_at is None
            and s.send_at is not None
            and s.send_at >= since
        ]

    async def save_sources(self, sources: Sequence[SourceUpdate]) -> None:
        for source in sources:
            key = (source.tenant_id, source.source_ref, source.touchpoint)
            stored = self.sources.get(key)
            if stored is None:
                self.sources[key] = dataclasses.replace(source)
                continue
            stored.cancelled_at = _coalesce(stored.cancelled_at, source.cancelled_at)
            stored.invitation_id = _coalesce(stored.invitation_id, source.invitation_id)
            stored.send_at = _coalesce(stored.send_at, source.send_at)

    async def cancel_sources(self, tenant_id: uuid.UUID, refs: Sequence[str], at: datetime) -> None:
        for (t, ref, _), stored in self.sources.items():
            if t == tenant_id and ref in refs and stored.cancelled_at is None:
                stored.cancelled_at = at

    async def quota_used(self, tenant_id: uuid.UUID, day: date) -> dict[str, int]:
        return {
            touchpoint: used for (t, touchpoint, d), used in self.quota.items() if t == tenant_id and d == day
        }

    async def add_quota_usage(self, tenant_id: uuid.UUID, day: date, used: Mapping[str, int]) -> None:
        for touchpoint, count in used.items():
            key = (tenant_id, touchpoint, day)
            self.quota[key] = self.quota.get(key, 0) + count

    # --- Decisions ------------------------------------------------------------------------------

    async def record_decisions(self, decisions: Sequence[DecisionRecord]) -> None:
        self.decisions.extend(decisions)

    # --- Purchases ------------------------------------------------------------------------------

    async def record_purchases(self, purchases: Sequence[PurchaseRecord]) -> set[tuple[uuid.UUID, str]]:
        added = set()
        for purchase in purchases:
            key = (purchase.tenant_id, purchase.order_id)
            if key not in self.purchases:
                self.purchases[key] = purchase
                added.add(key)
        return added

    async def spend(
        self, tenant_id: uuid.UUID, customer_ids: Iterable[str], since: datetime
    ) -> list[CustomerSpend]:
        wanted = set(customer_ids)
        totals: dict[tuple[str, str], int] = {}
        for (tenant, _), purchase in self.purchases.items():
            if tenant == tenant_id and purchase.customer_id in wanted and purchase.occurred_at >= since:
                key = (purchase.customer_id, purchase.currency)
                totals[key] = totals.get(key, 0) + purchase.amount_minor
        return [CustomerSpend(customer, currency, amount) for (customer, currency), amount in totals.items()]


def _same_email(stored: str | None, email: str) -> bool:
    return stored is not None and stored.lower() == email.lower()


# --- Intake on the fake -------------------------------------------------------------------------


@dataclasses.dataclass
class FakeTrigger:
    """One tenant, new (the default policy and built-in touchpoints), on an in-memory trigger."""

    tenant_id: uuid.UUID
    repository: FakeTriggerRepository
    uow: FakeUnitOfWork[FakeTriggerRepository]
    settings: TriggerSettings

    @classmethod
    def new_tenant(cls) -> FakeTrigger:
        repository = FakeTriggerRepository()
        tenant_id = uuid.uuid4()
        repository.tenants.add(str(tenant_id))
        return cls(tenant_id, repository, FakeUnitOfWork(repository), TriggerSettings())

    async def intake(self, events: list[Event[Contract]], now: datetime) -> list[IntakeOutcome]:
        """One request's (or consumer batch's) worth: decided, then committed."""
        async with self.uow as uow:
            outcomes = await handle_intake(events, uow, now=now, settings=self.settings)
            await uow.commit()
        return outcomes

    def requested(self) -> list[SurveyRequested]:
        return [e.data for e in self.uow.of_type(SURVEY_REQUESTED) if isinstance(e.data, SurveyRequested)]

    def event(
        self, event_type: str, data: Contract, *, at: datetime, event_id: str | None = None
    ) -> Event[Contract]:
        return new_event(
            event_type,
            tenant_id=str(self.tenant_id),
            data=data,
            subject=getattr(data, "customer_id", None),
            source="/tests",
            event_id=event_id,
            time=at,
        )

    def purchase(
        self, customer_id: str, order_id: str, *, at: datetime, event_id: str | None = None
    ) -> Event[Contract]:
        data = PurchaseCompleted(
            order_id=order_id, customer_id=customer_id, email=f"{customer_id}@example.com"
        )
        return self.event(PURCHASE_COMPLETED, data, at=at, event_id=event_id)

    def ticket(
        self, customer_id: str, ticket_id: str, *, at: datetime, event_id: str | None = None
    ) -> Event[Contract]:
        data = TicketClosed(ticket_id=ticket_id, customer_id=customer_id, email=f"{customer_id}@example.com")
        return self.event(TICKET_CLOSED, data, at=at, event_id=event_id)
