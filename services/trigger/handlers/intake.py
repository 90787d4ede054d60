"""Intake: decide incoming purchases and tickets, apply state events (cancellations, consent,
contact details), and close invitations from the survey's events. The handlers load state, ask the
domain, record the results and the outgoing events in the unit of work, and return. They never
commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import (
    CUSTOMER_ERASED,
    INTAKE_TYPES,
    PURCHASE_COMPLETED,
    SURVEY_BOUNCED,
    SURVEY_EXPIRED,
    SURVEY_FAILED,
    TICKET_CLOSED,
    Contract,
    CustomerErased,
    CustomerResubscribed,
    CustomerUnsubscribed,
    CustomerUpserted,
    Event,
    Money,
    OrderCancelled,
    PurchaseCompleted,
    SuppressionLifted,
    SurveyCancelled,
    SurveyContext,
    SurveyFailed,
    SurveyRequested,
    SurveyResponded,
    SurveyStep,
    TicketClosed,
)
from libs.common.kafka import RejectEvent
from libs.common.metrics import BoundedLabel
from services.trigger.config import TriggerSettings
from services.trigger.domain.cohorts import RELATIONSHIP_DUE
from services.trigger.domain.consent import address_record
from services.trigger.domain.context import CustomerProfile, account_owner, merged_attributes
from services.trigger.domain.rules import Candidate, Decision, Ledger, Outcome, Reason, decide
from services.trigger.domain.withdrawals import (
    PendingInvitation,
    WithdrawalReason,
    still_outstanding,
    unsubscribed_customers,
    withdraw,
)
from services.trigger.handlers.common import RelationshipDue, invitation_id_for, tenant_rules
from services.trigger.handlers.erasure import erased_before, erasure_id_for, request_erasure
from services.trigger.handlers.spend import record_and_read_spend
from services.trigger.repository import (
    Answered,
    ClosedInvitation,
    ConsentChange,
    CustomerUpdate,
    DecisionRecord,
    SourceUpdate,
    TouchpointClock,
    TriggerRepository,
)

#: The source record of an order cancelled before (or whatever) any touchpoint decided it.
CANCELLED_MARK = "*"
INTAKE_CONSUMER = "intake"
#: Everything producers may send: purchases and tickets are decided, the rest changes state.
ACCEPTED_TYPES = INTAKE_TYPES


SURVEYED_TYPES = frozenset({PURCHASE_COMPLETED, TICKET_CLOSED, RELATIONSHIP_DUE})

#: How far back an invitation may still be pending when an unsubscribe arrives: not sent yet, or sent
#: with its reminder to come (at most 29 days after sending), which the cancellation also withdraws.
_PENDING_LOOKBACK = timedelta(days=31)

DECISIONS = Counter(
    "nps_trigger_decisions_total", "Decisions on incoming events", ["touchpoint", "outcome", "reason"]
)
#: Touchpoints are named by tenants: the first 100 names keep their label, the rest are "other".
TOUCHPOINT_LABEL = BoundedLabel(100)


def _candidate(event: Event[Contract]) -> Candidate:
    data = event.data
    if isinstance(data, PurchaseCompleted):
        source_ref, is_test = f"order:{data.order_id}", data.test
    elif isinstance(data, TicketClosed):
        source_ref, is_test = f"ticket:{data.ticket_id}", False
    elif isinstance(data, RelationshipDue):
        source_ref, is_test = f"cohort:{data.period}:{data.account_id}:{data.customer_id}", False
    else:
        raise TypeError(f"{event.type} is not surveyed")
    return Candidate(
        event_id=event.id,
        event_type=event.type,
        customer_id=data.customer_id,
        email=data.email,
        source_ref=source_ref,
        data=event.envelope.data,
        time_zone=getattr(data, "time_zone", None),
        is_test=is_test,
        invitation_id=str(invitation_id_for(event.tenant_id, event.id)),
    )


def _customer_of(event: Event[Contract]) -> str | None:
    customer_id = getattr(event.data, "customer_id", None)
    return customer_id if isinstance(customer_id, str) else None


def _lock_subject(event: Event[Contract]) -> str | None:
    """Whose decisions this event must not race with: its customer, or the address of an
    unsubscribe that names no customer."""
    customer_id = _customer_of(event)
    if customer_id:
        return customer_id
    email = getattr(event.data, "email", None)
    return f"email:{email.lower()}" if isinstance(email, str) else None


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
        if self.decision.touchpoint is not None:
            result["touchpoint"] = self.decision.touchpoint.name
        if self.decision.reason is not None:
            result["reason"] = self.decision.reason.value
        if self.event.type == CUSTOMER_ERASED:
            result["erasure_id"] = str(erasure_id_for(self.event.tenant_id, self.event.id))
        if self.decision.invited:
            result["invitation_id"] = str(invitation_id_for(self.event.tenant_id, self.event.id))
        if self.decision.outcome is Outcome.DELAYED and self.decision.send_at is not None:
            result["send_at"] = self.decision.send_at.isoformat()
        return result


async def handle_intake(
    events: list[Event[Contract]],
    uow: UnitOfWork[TriggerRepository],
    *,
    now: datetime,
    settings: TriggerSettings,
    dry_run: bool = False,
) -> list[IntakeOutcome]:
    """For the HTTP edges (events API, webhooks): claim the batch's event ids, decide the new ones,
    report every event in order.

    ``dry_run``: the same decisions, not counted in the metrics; the caller rolls the unit of work
    back instead of committing, so nothing (claim, clock, decision, outgoing event) remains."""
    fresh = await uow.claim(INTAKE_CONSUMER, events)
    decided = await decide_intake(fresh, uow, now=now, settings=settings, dry_run=dry_run)
    return [IntakeOutcome(event, decided.get((event.tenant_id, event.id))) for event in events]


async def decide_intake(
    events: list[Event[Contract]],
    uow: UnitOfWork[TriggerRepository],
    *,
    now: datetime,
    settings: TriggerSettings,
    dry_run: bool = False,
) -> dict[tuple[str, str], Decision]:
    """Decide events already claimed as new: one recorded decision each, in order.

    First the batch's customers are locked for the rest of the transaction (all tenants in one
    statement, in one order), so that concurrent requests, webhooks and consumer batches for the
    same customer decide one after the other, each on the state the previous one committed. Then,
    per tenant: load everything the rules need in a handful of queries, decide in memory, then
    write customers, clocks, source records, quota, decisions and outgoing events in one go.
    """
    decided: dict[tuple[str, str], Decision] = {}
    by_tenant: dict[uuid.UUID, list[Event[Contract]]] = {}
    erasures: list[Event[Contract]] = []
    for event in events:
        if isinstance(event.data, CustomerErased):
            erasures.append(event)
        else:
            by_tenant.setdefault(event.tenant, []).append(event)
    await uow.repository.lock_customers(
        [(event.tenant_id, subject) for event in events if (subject := _lock_subject(event)) is not None],
    )
    secret = settings.privacy_hash_key.get_secret_value()
    for tenant, tenant_events in by_tenant.items():
        erased = await erased_before(uow, tenant, tenant_events, secret=secret, now=now)
        for event in tenant_events:
            if event.id in erased:
                decided[(event.tenant_id, event.id)] = _erased_decision(event)
        kept = [event for event in tenant_events if event.id not in erased]
        if kept:
            batch = _TenantBatch(uow, tenant, kept, now, settings, count=not dry_run)
            decided.update(await batch.run())
    # After the batch's other events: what they recorded about the customer is erased too.
    for event in erasures:
        assert isinstance(event.data, CustomerErased)
        await request_erasure(
            uow,
            event.tenant,
            event.data.customer_id,
            # Never later than its arrival: a tombstone dated ahead would refuse new data.
            requested_at=min(event.data.requested_at or now, now),
            now=now,
            secret=secret,
            origin="event",
            erasure_id=erasure_id_for(event.tenant_id, event.id),
        )
        decided[(event.tenant_id, event.id)] = Decision(
            Candidate(
                event_id=event.id,
                event_type=event.type,
                customer_id=event.data.customer_id,
                email=None,
                source_ref="",
            ),
            Outcome.RECORDED,
        )
    return decided


def _erased_decision(event: Event[Contract]) -> Decision:
    """An event about a customer erased after it happened: not taken in (nor recorded: the decision
    would keep what the erasure removed)."""
    candidate = Candidate(
        event_id=event.id,
        event_type=event.type,
        customer_id=_customer_of(event) or "",
        email=None,
        source_ref="",
    )
    return Decision(
        candidate, Outcome.SKIPPED, reason=Reason.ERASED, detail="the customer was erased after this event"
    )


class _TenantBatch:
    #: The tenant's rest period, recorded with each decision; :meth:`run` reads it first.
    rest_days: int

    def __init__(
        self,
        uow: UnitOfWork[TriggerRepository],
        tenant_id: uuid.UUID,
        events: list[Event[Contract]],
        now: datetime,
        settings: TriggerSettings,
        *,
        count: bool = True,
    ) -> None:
        self.uow = uow
        self.count = count
        self.tenant_id = tenant_id
        self.events = events
        self.now = now
        self.settings = settings
        self._privacy_hash_key = settings.privacy_hash_key.get_secret_value()
        self.ledger = Ledger()
        self.customers: dict[str, CustomerUpdate] = {}
        self.clocks: dict[tuple[str, str], datetime] = {}
        self.sources: dict[tuple[str, str], SourceUpdate] = {}
        self.decisions: list[DecisionRecord] = []
        self.invitations_by_source: dict[str, list[tuple[uuid.UUID, str]]] = {}
        self.pending_by_customer: dict[str, list[uuid.UUID]] = {}
        self.cancelled_invitations: set[uuid.UUID] = set()
        self.quota_added: dict[str, int] = {}
        self.consent_changes: dict[str, ConsentChange] = {}
        self.email_suppressions: list[tuple[str, str]] = []
        self.cancelled_refs: set[str] = set()
        #: Stored name and locale per customer, for events that carry none.
        self.contact_details: dict[str, tuple[str | None, str | None]] = {}
        #: Stored account, owner and attributes per customer, for the survey context.
        self.profiles: dict[str, CustomerProfile] = {}
        self.closed_invitations: list[ClosedInvitation] = []
        #: The 12-month spend of each customer the batch may survey (``context.spend_12m``).
        self.spend: dict[str, list[Money]] = {}

    async def run(self) -> dict[tuple[str, str], Decision]:
        rules, policy = await tenant_rules(self.uow, self.tenant_id, self.settings)
        self.rest_days = policy.rest_period.days
        await self._load()
        surveyed = [event for event in self.events if event.type in SURVEYED_TYPES]
        self.spend = await record_and_read_spend(
            self.uow, self.tenant_id, self.events, {c for e in surveyed if (c := _customer_of(e))}, self.now
        )
        decided: dict[tuple[str, str], Decision] = {}
        tenant = str(self.tenant_id)
        for event in self.events:
            if event.type in SURVEYED_TYPES:
                [decision] = decide(
                    [_candidate(event)], rules, self.ledger, policy, self.now, tenant_id=tenant
                )
                self._apply_decision(event, decision)
            else:
                decision = self._apply_state_event(event)
            decided[(event.tenant_id, event.id)] = decision
            self._record(event, decision)
        await self._save()
        return decided

    async def _load(self) -> None:
        repository = self.uow.repository
        customer_ids = {c for c in (_customer_of(e) for e in self.events) if c}
        refs = set()
        emails = set()
        for event in self.events:
            data = event.data
            if event.type in SURVEYED_TYPES:
                refs.add(_candidate(event).source_ref)
            if isinstance(data, OrderCancelled):
                refs.add(f"order:{data.order_id}")
            email = getattr(data, "email", None)
            if isinstance(email, str):
                emails.add(email)
            if isinstance(data, CustomerUnsubscribed) and data.email:
                customer_ids.update(await repository.customers_with_email(self.tenant_id, data.email))
        for known in await repository.load_customers(self.tenant_id, customer_ids):
            state = self.ledger.customer(known.customer_id)
            state.last_invited_at = known.last_invited_at
            state.last_responded_at = known.last_responded_at
            state.email = known.email
            state.time_zone = known.time_zone
            state.suppressed = known.suppressed_at is not None
            if known.outstanding_invitation_id is not None:
                state.outstanding_invitation = str(known.outstanding_invitation_id)
            self.contact_details[known.customer_id] = (known.name, known.locale)
            self.profiles[known.customer_id] = CustomerProfile(
                known.account_id, known.account_owner_email, known.attributes or {}
            )
        self.ledger.suppressed_emails = await repository.suppressed_emails(self.tenant_id, emails)
        for clock in await repository.touchpoint_clocks(self.tenant_id, customer_ids):
            self.ledger.customer(clock.customer_id).touchpoint_invited[clock.touchpoint] = (
                clock.last_invited_at
            )
        for source in await repository.load_sources(self.tenant_id, refs):
            if source.cancelled_at is not None:
                self.ledger.cancelled_sources.add(source.source_ref)
            if source.touchpoint != CANCELLED_MARK:
                self.ledger.decided_sources.add((source.source_ref, source.touchpoint))
            if source.invitation_id is not None and source.cancelled_at is None:
                self.invitations_by_source.setdefault(source.source_ref, []).append(
                    (source.invitation_id, source.customer_id)
                )
        if any(isinstance(event.data, CustomerUnsubscribed) for event in self.events):
            since = self.now - _PENDING_LOOKBACK
            for pending in await repository.pending_invitations(self.tenant_id, customer_ids, since):
                self.pending_by_customer.setdefault(pending.customer_id, []).append(pending.invitation_id)
        self.ledger.quota_used = {
            (name, self.now.date()): used
            for name, used in (await repository.quota_used(self.tenant_id, self.now.date())).items()
        }

    def _customer(self, customer_id: str) -> CustomerUpdate:
        update = self.customers.get(customer_id)
        if update is None:
            update = self.customers[customer_id] = CustomerUpdate(self.tenant_id, customer_id, self.now)
        return update

    def _apply_decision(self, event: Event[Contract], decision: Decision) -> None:
        data = event.data
        assert isinstance(data, PurchaseCompleted | TicketClosed | RelationshipDue)
        update = self._customer(data.customer_id)
        _learn_details(update, data)
        self._learn_contact(data.customer_id, getattr(data, "name", None), getattr(data, "locale", None))
        profile = self.profiles.get(data.customer_id, CustomerProfile())
        if data.account_id is not None:
            self.profiles[data.customer_id] = replace(profile, account_id=data.account_id)
        touchpoint = decision.touchpoint
        if touchpoint is None or decision.reason in (
            Reason.FILTERED,
            Reason.CANCELLED,
            Reason.DUPLICATE,
            Reason.UNSUBSCRIBED,
        ):
            return
        candidate = decision.candidate
        invitation_id = invitation_id_for(event.tenant_id, event.id) if decision.invited else None
        self.sources[(candidate.source_ref, touchpoint.name)] = SourceUpdate(
            self.tenant_id,
            candidate.source_ref,
            touchpoint.name,
            candidate.customer_id,
            decided_at=self.now,
            invitation_id=invitation_id,
            send_at=decision.send_at,
        )
        if not decision.invited or invitation_id is None:
            return
        update.last_invited_at = self.now
        update.outstanding_invitation_id = invitation_id
        self.clocks[(candidate.customer_id, touchpoint.name)] = self.now
        self.quota_added[touchpoint.name] = self.quota_added.get(touchpoint.name, 0) + 1
        self.invitations_by_source.setdefault(candidate.source_ref, []).append(
            (invitation_id, candidate.customer_id)
        )
        self.pending_by_customer.setdefault(candidate.customer_id, []).append(invitation_id)
        known_name, known_locale = self.contact_details.get(candidate.customer_id, (None, None))
        self.uow.emit(
            _survey_requested(
                event,
                decision,
                invitation_id,
                name=known_name,
                locale=known_locale,
                profile=profile,
                spend_12m=self.spend.get(data.customer_id),
            ),
            tenant_id=event.tenant_id,
            subject=data.customer_id,
            event_id=str(invitation_id),
            time=decision.send_at,
        )

    def _apply_state_event(self, event: Event[Contract]) -> Decision:
        data = event.data
        customer_id = _customer_of(event) or ""
        candidate = Candidate(
            event_id=event.id, event_type=event.type, customer_id=customer_id, email=None, source_ref=""
        )
        if isinstance(data, OrderCancelled):
            return self._cancel_order(data, candidate)
        if isinstance(data, CustomerUnsubscribed):
            return self._unsubscribe(event, data, candidate)
        if isinstance(data, CustomerResubscribed):
            return self._resubscribe(event, data, candidate)
        if isinstance(data, CustomerUpserted):
            return self._upsert_contact(data, candidate)
        raise RejectEvent(f"type: {event.type} is not handled by the trigger")

    def _cancel_order(self, data: OrderCancelled, candidate: Candidate) -> Decision:
        ref = f"order:{data.order_id}"
        self.ledger.cancelled_sources.add(ref)
        pending = [PendingInvitation(i, c) for i, c in self.invitations_by_source.pop(ref, [])]
        withdrawn = self._withdraw(pending, "cancelled")
        self.sources[(ref, CANCELLED_MARK)] = SourceUpdate(
            self.tenant_id, ref, CANCELLED_MARK, data.customer_id, decided_at=self.now, cancelled_at=self.now
        )
        self.cancelled_refs.add(ref)
        outcome = Outcome.CANCELLED if withdrawn else Outcome.RECORDED
        return Decision(
            candidate,
            outcome,
            reason=Reason.CANCELLED,
            detail=f"order {data.reason}; {withdrawn} pending invitation(s) withdrawn",
        )

    def _unsubscribe(
        self, event: Event[Contract], data: CustomerUnsubscribed, candidate: Candidate
    ) -> Decision:
        targets = unsubscribed_customers(
            data.customer_id, data.email, {c: state.email for c, state in self.ledger.customers.items()}
        )
        record: str | None = None
        if data.email:
            self.ledger.suppressed_emails.add(data.email.lower())
            self.email_suppressions.append((data.email, data.reason))
            # Kept by hash, not address, so that it outlives the erasure of whoever had it.
            record = address_record(self._privacy_hash_key, data.email)
            self.consent_changes[record] = ConsentChange(record, self.now, data.reason)
        withdrawn = 0
        for target in targets:
            self.ledger.customer(target).suppressed = True
            self.consent_changes[target] = ConsentChange(target, self.now, data.reason, data.email)
            pending = [PendingInvitation(i, target) for i in self.pending_by_customer.pop(target, [])]
            withdrawn += self._withdraw(pending, "unsubscribed")
        if not targets and record is not None:
            # Nobody known by that address yet: the record remembers it, so that they are never asked.
            candidate = Candidate(
                event_id=event.id,
                event_type=event.type,
                customer_id=record,
                email=None,
                source_ref="",
            )
        outcome = Outcome.CANCELLED if withdrawn else Outcome.RECORDED
        return Decision(
            candidate,
            outcome,
            reason=Reason.UNSUBSCRIBED,
            detail=f"{data.reason}; {withdrawn} pending invitation(s) withdrawn",
        )

    def _resubscribe(
        self, event: Event[Contract], data: CustomerResubscribed, candidate: Candidate
    ) -> Decision:
        state = self.ledger.customer(data.customer_id)
        state.suppressed = False
        if state.email:
            self.ledger.suppressed_emails.discard(state.email.lower())
        self.consent_changes[data.customer_id] = ConsentChange(data.customer_id)
        if state.email:
            record = address_record(self._privacy_hash_key, state.email)
            self.consent_changes[record] = ConsentChange(record)
            # The survey keeps its own suppression list by address: without this it would keep
            # refusing the invitations decided from now on.
            self.uow.emit(
                SuppressionLifted(customer_id=data.customer_id, email=state.email, at=self.now),
                tenant_id=self.tenant_id,
                subject=data.customer_id,
                event_id=f"lifted:{event.id}",
                time=self.now,
            )
        return Decision(candidate, Outcome.RECORDED, detail="re-subscribed")

    def _upsert_contact(self, data: CustomerUpserted, candidate: Candidate) -> Decision:
        update = self._customer(data.customer_id)
        _learn_details(update, data)
        if data.attributes is not None:
            # Only the customer's own: an order's or ticket's attributes describe that order or ticket.
            update.attributes = data.attributes
        known = self.profiles.get(data.customer_id, CustomerProfile())
        self.profiles[data.customer_id] = CustomerProfile(
            data.account_id or known.account_id,
            data.account_owner_email or known.account_owner_email,
            known.attributes if data.attributes is None else data.attributes,
        )
        state = self.ledger.customer(data.customer_id)
        state.email = data.email or state.email
        state.time_zone = data.time_zone or state.time_zone
        self._learn_contact(data.customer_id, data.name, data.locale)
        return Decision(candidate, Outcome.RECORDED, detail="contact details updated")

    def _learn_contact(self, customer_id: str, name: str | None, locale: str | None) -> None:
        known_name, known_locale = self.contact_details.get(customer_id, (None, None))
        self.contact_details[customer_id] = (name or known_name, locale or known_locale)

    def _withdraw(self, pending: list[PendingInvitation], reason: WithdrawalReason) -> int:
        """Withdraw pending invitations (the domain says which): each is announced as cancelled,
        closed, and no longer its customer's outstanding one."""
        withdrawals = withdraw(pending, reason, withdrawn_before=self.cancelled_invitations)
        for withdrawal in withdrawals:
            self.cancelled_invitations.add(withdrawal.invitation_id)
            state = self.ledger.customer(withdrawal.customer_id)
            state.outstanding_invitation = still_outstanding(state.outstanding_invitation, [withdrawal])
            self.closed_invitations.append(
                ClosedInvitation(self.tenant_id, withdrawal.customer_id, withdrawal.invitation_id)
            )
            self.uow.emit(
                SurveyCancelled(
                    invitation_id=withdrawal.invitation_id,
                    customer_id=withdrawal.customer_id,
                    reason=withdrawal.reason,
                ),
                tenant_id=self.tenant_id,
                subject=withdrawal.customer_id,
                event_id=withdrawal.event_id,
                time=self.now,
            )
        return len(withdrawals)

    def _record(self, event: Event[Contract], decision: Decision) -> None:
        touchpoint = decision.touchpoint
        reason = decision.reason.value if decision.reason else None
        if self.count:
            self.uow.count(
                DECISIONS.labels(
                    TOUCHPOINT_LABEL(touchpoint.name) if touchpoint else "none",
                    decision.outcome.value,
                    reason or "none",
                )
            )
        self.decisions.append(
            DecisionRecord(
                tenant_id=self.tenant_id,
                event_id=event.id,
                event_type=event.type,
                customer_id=decision.candidate.customer_id[:200],
                outcome=decision.outcome.value,
                rest_period_days=self.rest_days,
                decided_at=self.now,
                touchpoint=touchpoint.name if touchpoint else None,
                touchpoint_version=touchpoint.version if touchpoint else None,
                reason=reason,
                invitation_id=invitation_id_for(event.tenant_id, event.id) if decision.invited else None,
                rest_until=decision.rest_until,
                send_at=decision.send_at,
                detail=decision.detail[:300] if decision.detail else None,
            )
        )

    async def _save(self) -> None:
        repository = self.uow.repository
        await repository.save_customers(list(self.customers.values()))
        await repository.close_invitations(self.closed_invitations)
        for _, change in sorted(self.consent_changes.items()):
            await repository.set_consent(self.tenant_id, change, self.now)
        for email, reason in self.email_suppressions:
            await repository.suppress_by_email(self.tenant_id, email, reason, self.now)
        await repository.save_touchpoint_clocks(
            self.tenant_id, [TouchpointClock(c, t, at) for (c, t), at in sorted(self.clocks.items())]
        )
        for ref in self.cancelled_refs:
            for (source_ref, _), source in self.sources.items():
                if source_ref == ref:
                    source.cancelled_at = self.now
        await repository.save_sources(list(self.sources.values()))
        await repository.cancel_sources(self.tenant_id, sorted(self.cancelled_refs), self.now)
        await repository.add_quota_usage(self.tenant_id, self.now.date(), self.quota_added)
        await repository.record_decisions(self.decisions)


#: Contact details an event may carry; a value it leaves out (``None``) keeps the known one.
_DETAILS = ("email", "name", "locale", "time_zone", "account_id", "account_owner_email")


def _learn_details(
    update: CustomerUpdate, data: PurchaseCompleted | TicketClosed | RelationshipDue | CustomerUpserted
) -> None:
    for name in _DETAILS:
        value = getattr(data, name, None)
        if value is not None:
            setattr(update, name, value)


def _survey_requested(
    event: Event[Contract],
    decision: Decision,
    invitation_id: uuid.UUID,
    *,
    name: str | None,
    locale: str | None,
    profile: CustomerProfile,
    spend_12m: list[Money] | None = None,
) -> SurveyRequested:
    """The event's own name and locale win; the stored ones (``customer.upserted.v1``) fill in."""
    data = event.data
    assert isinstance(data, PurchaseCompleted | TicketClosed | RelationshipDue)
    assert decision.email and decision.touchpoint
    return SurveyRequested(
        invitation_id=invitation_id,
        customer_id=data.customer_id,
        email=decision.email,
        name=getattr(data, "name", None) or name,
        locale=getattr(data, "locale", None) or locale,
        touchpoint=decision.touchpoint.name,
        trigger_event_id=event.id,
        trigger_event_type=event.type,
        send_at=decision.send_at or event.envelope.time or datetime.now(UTC),
        context=_survey_context(data, profile, locale, spend_12m),
    )


def _survey_context(
    data: PurchaseCompleted | TicketClosed | RelationshipDue,
    profile: CustomerProfile,
    locale: str | None,
    spend_12m: list[Money] | None = None,
) -> SurveyContext:
    """What the survey is about (the order or ticket), and what its follow-up is routed by."""
    purchase = data if isinstance(data, PurchaseCompleted) else None
    return SurveyContext(
        order_id=purchase.order_id if purchase else None,
        ticket_id=data.ticket_id if isinstance(data, TicketClosed) else None,
        amount=purchase.amount if purchase else None,
        currency=purchase.currency if purchase else None,
        account_id=data.account_id or profile.account_id,
        account_owner_email=account_owner(profile, data.account_id),
        attributes=merged_attributes(profile.attributes, getattr(data, "attributes", None)),
        spend_12m=spend_12m,
        locale=getattr(data, "locale", None) or locale,
    )


async def handle_intake_from_kafka(
    events: list[Event[Contract]],
    uow: UnitOfWork[TriggerRepository],
    *,
    now: datetime,
    settings: TriggerSettings,
) -> None:
    known = await uow.repository.known_tenants([event.tenant_id for event in events])
    unknown = sorted({event.tenant_id for event in events} - known)
    if unknown:
        raise RejectEvent(f"tenantid: unknown tenant {unknown[0]!r}")
    # The consumer runner has claimed these event ids already, under the same consumer name.
    await decide_intake(events, uow, now=now, settings=settings)


async def on_survey_events(events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository]) -> None:
    """The `responses` consumer of nps.survey-events: answers move the response clock, and
    answers, expiries and failures close the invitation they name."""
    await on_survey_responded(events, uow)
    await on_invitation_closed(events, uow)


async def on_survey_responded(events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository]) -> None:
    """The response clock: a tenant may count the rest period from the last answer. An answer
    closes its invitation: it is no longer outstanding."""
    answers = [event.data for event in events if isinstance(event.data, SurveyResponded)]
    tenants = [event.tenant for event in events if isinstance(event.data, SurveyResponded)]
    await uow.repository.set_responded(
        [Answered(t, a.customer_id, a.responded_at) for t, a in zip(tenants, answers, strict=True)]
    )
    await uow.repository.close_invitations(
        [ClosedInvitation(t, a.customer_id, a.invitation_id) for t, a in zip(tenants, answers, strict=True)]
    )


#: Survey events that end an invitation unanswered: expired, given up on, or bounced (it never
#: reached anyone). Our own cancellations close theirs as they are made.
CLOSING_TYPES = frozenset({SURVEY_EXPIRED, SURVEY_FAILED, SURVEY_BOUNCED})


async def on_invitation_closed(events: list[Event[Contract]], uow: UnitOfWork[TriggerRepository]) -> None:
    """An invitation expired, failed or bounced: it is no longer outstanding, so the response clock may
    count again (from the last answer, or the last invitation for someone who never answered)."""
    closed = [
        ClosedInvitation(event.tenant, event.data.customer_id, event.data.invitation_id)
        for event in events
        if event.type in CLOSING_TYPES and isinstance(event.data, SurveyStep | SurveyFailed)
    ]
    await uow.repository.close_invitations(closed)
