"""The event envelope (CloudEvents 1.0) and every typed, versioned event contract.

An event on the wire is a CloudEvent in structured mode (a JSON object) or binary mode (``ce_``
headers plus the data as the body). The tenant travels as the ``tenantid`` extension attribute,
the trace context as ``traceparent`` / ``tracestate`` (the Distributed Tracing extension).
``data`` is validated against the contract registered for the event ``type``.

Each contract class knows the one ``type`` it travels as and its topic (``event_type``, ``topic``);
:data:`CONTRACTS` and the type constants are derived from :data:`PUBLIC_CONTRACTS`, the events that
cross between services. A service's internal events (the trigger's ``RelationshipDue``) are not here.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from libs.common import topics, tracing

SPEC_VERSION = "1.0"

_EMAIL = re.compile(r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,253}\.[^@\s<>,;\".]{2,63}$")


def _valid_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


def _aware(value: datetime) -> datetime:
    """Timestamps without a zone are ambiguous across the platform; read them as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Email = Annotated[str, AfterValidator(_valid_email)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Timestamp = Annotated[datetime, AfterValidator(_aware)]
Locale = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
]
Touchpoint = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
LOWEST_SCORE = 0
HIGHEST_SCORE = 10
Score = Annotated[int, Field(ge=LOWEST_SCORE, le=HIGHEST_SCORE)]

MAX_ATTRIBUTES = 20
_ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ATTRIBUTE_VALUE_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _valid_attributes(value: dict[str, str]) -> dict[str, str]:
    """Routing keys such as ``country`` or ``store``: few, short, plain text. Every error names the key."""
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes, not {len(value)}")
    for key, item in value.items():
        if not _ATTRIBUTE_KEY.match(key):
            raise ValueError(f"attribute key {key[:50]!r} must match {_ATTRIBUTE_KEY.pattern}")
        if not 1 <= len(item) <= _ATTRIBUTE_VALUE_LIMIT:
            raise ValueError(f"attribute {key!r}: a value is 1 to {_ATTRIBUTE_VALUE_LIMIT} characters")
        if _CONTROL.search(item):
            raise ValueError(f"attribute {key!r}: a value must not contain control characters")
    return value


#: Free-form facts about a customer, an order or a ticket that follow-up cases are routed by, e.g.
#: ``{"country": "DK", "store": "copenhagen"}``: at most 20 keys, values of 1-200 characters.
Attributes = Annotated[dict[str, str], AfterValidator(_valid_attributes)]


class NpsCategory(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def nps_category(score: int) -> NpsCategory:
    """The one definition of the NPS groups: promoters answer 9-10, passives 7-8, detractors 0-6."""
    if isinstance(score, bool) or not LOWEST_SCORE <= score <= HIGHEST_SCORE:
        raise ValueError(f"a score is a whole number from {LOWEST_SCORE} to {HIGHEST_SCORE}, not {score!r}")
    if score >= 9:
        return NpsCategory.PROMOTER
    if score >= 7:
        return NpsCategory.PASSIVE
    return NpsCategory.DETRACTOR


class Contract(BaseModel):
    """Base of every event's ``data``: frozen, and unknown fields are an error.

    Each concrete contract knows the one event ``type`` it travels as and the topic it travels on,
    so emitting one needs neither spelled out again (:meth:`event`, ``UnitOfWork.emit``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[str]

    @classmethod
    def is_concrete(cls) -> bool:
        """Whether this class names an event type (a shared base such as :class:`SurveyStep` does not)."""
        return "event_type" in vars(cls)

    def event(
        self,
        *,
        tenant_id: uuid.UUID | str,
        subject: str | None,
        source: str,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> Event[Self]:
        """This contract as a platform event. Its id is random unless the caller derives one for
        idempotency."""
        if not type(self).is_concrete():
            raise TypeError(f"{type(self).__name__} is not one event type; use one of its subclasses")
        envelope = Envelope(
            specversion=SPEC_VERSION,
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=self.event_type,
            tenantid=str(tenant_id),
            time=time or datetime.now(UTC),
            subject=subject,
            data=self.model_dump(mode="json", exclude_none=True),
        )
        return Event(envelope=envelope, data=self)


# --- Producer events (webshops and support systems) -------------------------------------------


TimeZone = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}$|^UTC$", max_length=64)
]
Status = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]


class PurchaseCompleted(Contract):
    event_type = "purchase.completed.v1"
    topic = topics.PURCHASES

    order_id: Identifier
    customer_id: Identifier
    email: Email | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    locale: Locale | None = None
    amount: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=4)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    occurred_at: Timestamp | None = None
    #: The shop's own order status (e.g. paid, fulfilled); touchpoint filters match on it.
    status: Status | None = None
    #: A test order from the shop's admin: never surveyed unless a touchpoint asks for it.
    test: bool = False
    account_id: Identifier | None = None
    time_zone: TimeZone | None = None
    #: The order's own attributes (store, product category...); they win over the customer's.
    attributes: Attributes | None = None


class TicketClosed(Contract):
    event_type = "ticket.closed.v1"
    topic = topics.TICKETS

    ticket_id: Identifier
    customer_id: Identifier
    email: Email | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    locale: Locale | None = None
    agent_email: Email | None = None
    closed_at: Timestamp | None = None
    status: Status | None = None
    account_id: Identifier | None = None
    time_zone: TimeZone | None = None
    #: The ticket's own attributes (priority, group...); they win over the customer's.
    attributes: Attributes | None = None


class OrderCancelled(Contract):
    """An order was cancelled, refunded or voided: a pending survey about it must not go out."""

    event_type = "order.cancelled.v1"
    topic = topics.PURCHASES

    order_id: Identifier
    customer_id: Identifier
    reason: Literal["cancelled", "refunded", "voided"]
    occurred_at: Timestamp | None = None


class CustomerUpserted(Contract):
    """A customer (a contact) as the source system knows it; B2B contacts name their account."""

    event_type = "customer.upserted.v1"
    topic = topics.CUSTOMERS

    customer_id: Identifier
    email: Email | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    account_id: Identifier | None = None
    account_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    #: Who owns the account (e.g. its key account manager): a follow-up case may be routed to them.
    account_owner_email: Email | None = None
    #: The whole current set; left out, the known attributes stay.
    attributes: Attributes | None = None


class CustomerUnsubscribed(Contract):
    """The customer may not be surveyed again until they re-subscribe: an unsubscribe, a hard bounce
    or a complaint. Either the customer id or the email address identifies them."""

    event_type = "customer.unsubscribed.v1"
    topic = topics.CUSTOMERS

    customer_id: Identifier | None = None
    email: Email | None = None
    reason: Literal["unsubscribed", "hard_bounce", "complaint"] = "unsubscribed"
    occurred_at: Timestamp | None = None

    @model_validator(mode="after")
    def _identified(self) -> CustomerUnsubscribed:
        if self.customer_id is None and self.email is None:
            raise ValueError("customer_id or email is required")
        return self


class CustomerResubscribed(Contract):
    event_type = "customer.resubscribed.v1"
    topic = topics.CUSTOMERS

    customer_id: Identifier
    occurred_at: Timestamp | None = None


class CustomerErased(Contract):
    """The customer asked to be forgotten (GDPR art. 17): every service removes or anonymises what it
    holds about them. The same as ``DELETE /v1/customers/{customer_id}`` on the trigger."""

    event_type = "customer.erased.v1"
    topic = topics.CUSTOMERS

    customer_id: Identifier
    #: When the customer asked; data about them that is older is erased, and events older than this
    #: that arrive later (retries, replays) are not taken in again. Left out: when it arrives.
    requested_at: Timestamp | None = None


# --- Platform events ------------------------------------------------------------------------


#: A customer who paid in more currencies than this within a year is summed in the first ones seen.
MAX_CURRENCIES = 10


class Money(BaseModel):
    """An amount in the currency's minor units (cents, øre), never converted to another currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_minor: int = Field(ge=0, le=10**15)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class SurveyContext(BaseModel):
    """What a survey is about, carried from the trigger's request to the answer, so that a follow-up
    case can show the order or ticket and be routed by the customer's attributes and account owner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: Identifier | None = None
    ticket_id: Identifier | None = None
    amount: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=4)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    account_id: Identifier | None = None
    account_owner_email: Email | None = None
    #: The customer's attributes (``customer.upserted.v1``), overlaid by the order's or ticket's own.
    attributes: Attributes = Field(default_factory=dict)
    purpose: Literal["survey", "recovery"] = "survey"
    #: A recovery survey: the follow-up case it asks about.
    recovery_case_id: uuid.UUID | None = None
    #: The language the customer was asked in, as the trigger chose it (the event's or the customer's).
    locale: Locale | None = None
    #: What the customer spent with the tenant in the 12 months up to the survey, per currency (never
    #: converted): revenue at risk is reckoned from it.
    spend_12m: Annotated[list[Money], Field(max_length=MAX_CURRENCIES)] | None = None


def is_recovery_answer(data: Contract) -> bool:
    """An answer to a follow-up case's recovery survey: it measures whether following up worked,
    and is kept out of the NPS itself (those customers were asked because they were detractors)."""
    context = getattr(data, "context", None)
    return isinstance(context, SurveyContext) and context.purpose == "recovery"


class SurveyRequested(Contract):
    event_type = "survey.requested.v1"
    topic = topics.SURVEY_REQUESTS

    invitation_id: uuid.UUID
    customer_id: Identifier
    email: Email
    name: str | None = None
    locale: Locale | None = None
    touchpoint: Touchpoint
    trigger_event_id: Identifier
    trigger_event_type: str
    send_at: Timestamp
    context: SurveyContext | None = None


class SurveyCancelled(Contract):
    """The trigger withdraws an invitation that has not been sent yet."""

    event_type = "survey.cancelled.v1"
    topic = topics.SURVEY_REQUESTS

    invitation_id: uuid.UUID
    customer_id: Identifier
    reason: Literal["cancelled", "unsubscribed"]


class SurveySent(Contract):
    event_type = "survey.sent.v1"
    topic = topics.SURVEY_EVENTS

    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    sent_at: Timestamp


class SurveyResponded(Contract):
    event_type = "survey.responded.v1"
    topic = topics.SURVEY_EVENTS

    response_id: uuid.UUID
    invitation_id: uuid.UUID
    customer_id: Identifier
    email: Email
    name: str | None = None
    touchpoint: Touchpoint
    score: Score
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None
    responded_at: Timestamp
    context: SurveyContext | None = None


class SurveyResponseUpdated(Contract):
    """The respondent added to, or changed, an answer already announced by ``survey.responded``.

    Always the whole current answer, never a delta, with a ``revision`` that grows by one per
    change: a consumer applies an update only if its revision is higher than the one it holds, so
    duplicates and reordering are harmless. ``score`` may differ from the responded score only
    inside the short grace period after the first answer.
    """

    event_type = "survey.response_updated.v1"
    topic = topics.SURVEY_EVENTS

    response_id: uuid.UUID
    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    revision: int = Field(ge=2)
    score: Score
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None
    recommended: bool | None = None
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    effort: Annotated[int, Field(ge=1, le=7)] | None = None
    responded_at: Timestamp
    updated_at: Timestamp
    context: SurveyContext | None = None


class SurveyStep(Contract):
    """One step of an invitation's funnel after sending: opened (tracking pixel), clicked (a link
    in the email was followed), reminded, bounced, unsubscribed or expired unanswered. Each step is
    its own subclass, with these fields; :func:`new_event` still accepts this base for any step type."""

    topic = topics.SURVEY_EVENTS

    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    at: Timestamp
    #: Opened: a machine fetched the pixel (Apple Mail Privacy Protection, a mail gateway on
    #: delivery, a script), which says the email arrived, not that anybody read it.
    machine: bool = False


class SurveyOpened(SurveyStep):
    event_type = "survey.opened.v1"


class SurveyClicked(SurveyStep):
    event_type = "survey.clicked.v1"


class SurveyReminded(SurveyStep):
    event_type = "survey.reminded.v1"


class SurveyBounced(SurveyStep):
    event_type = "survey.bounced.v1"


class SurveyUnsubscribed(SurveyStep):
    event_type = "survey.unsubscribed.v1"


class SurveyExpired(SurveyStep):
    event_type = "survey.expired.v1"


FailureReason = Literal[
    "expired",
    "attempts_exhausted",
    "refused",
    "recipient_refused",
    "suppressed",
    "unbuildable",
    "tenant_unknown",
]


class SurveyFailed(Contract):
    """The survey gave up on an invitation: it was never delivered. ``reason`` is a closed set of
    codes (for counting and alerting); ``detail`` says what happened, with no address in it."""

    event_type = "survey.failed.v1"
    topic = topics.SURVEY_EVENTS

    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    at: Timestamp
    reason: FailureReason
    detail: Annotated[str, StringConstraints(max_length=500)] | None = None


class SuppressionLifted(Contract):
    """The trigger tells the survey that a customer re-subscribed: their address may be emailed
    again (the survey keeps its own suppression list, by address)."""

    event_type = "suppression.lifted.v1"
    topic = topics.SURVEY_REQUESTS

    customer_id: Identifier
    email: Email
    at: Timestamp


class PurchaseRecorded(Contract):
    """The trigger added an order to its purchases ledger (once per order: a repeat is not announced
    again), so that reporting can tell which customers bought again after they answered. The amount
    is in its currency's minor units; ``occurred_at`` is when the customer bought."""

    event_type = "purchase.recorded.v1"
    topic = topics.PURCHASES_RECORDED

    customer_id: Identifier
    order_id: Identifier
    amount: Money
    occurred_at: Timestamp


#: The services that hold customer data, each of which completes an erasure.
ErasureService = Literal["trigger", "survey", "scoring", "alerting", "reporting"]
ERASURE_SERVICES: tuple[ErasureService, ...] = ("trigger", "survey", "scoring", "alerting", "reporting")
#: What a completion counts: a closed set of names (the rows of one kind removed or anonymised).
ErasureCountName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ErasureRequested(Contract):
    """The trigger asks every other service to erase one customer (keyed by the customer, so it
    stays in order with their other events on the same topic)."""

    event_type = "customer.erasure.requested.v1"
    topic = topics.ERASURES

    erasure_id: uuid.UUID
    customer_id: Identifier
    requested_at: Timestamp


class ErasureCompleted(Contract):
    """One service erased the customer, in one transaction: how many rows of each kind it removed or
    anonymised. It names no customer, only the erasure, so the receipt built from it holds no
    personal data."""

    event_type = "customer.erasure.completed.v1"
    topic = topics.ERASURES

    erasure_id: uuid.UUID
    service: ErasureService
    counts: Annotated[dict[ErasureCountName, Annotated[int, Field(ge=0)]], Field(max_length=30)]
    completed_at: Timestamp


NpsBucket = Literal["all", "day", "week", "month"]
#: A segment's dimension, e.g. ``country``, ``store``, ``category``: named as attribute keys are.
SegmentDimension = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
SegmentValue = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class NpsWindow(BaseModel):
    """The answers a score counts, by when they were given: all so far, or one UTC day, ISO week
    (Monday to Sunday) or calendar month, from ``start`` up to the day before ``end``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: NpsBucket = "all"
    start: date | None = None
    end: date | None = None


class NpsSegment(BaseModel):
    """The answers of customers with one value of one attribute, as it was when they were asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dimension: SegmentDimension
    value: SegmentValue


#: Answers per score, 0 to 10.
Distribution = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=11, max_length=11)]


class NpsInterval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float = Field(ge=-100, le=100)
    high: float = Field(ge=-100, le=100)
    level: float = Field(gt=0, lt=1)


#: Currencies one cell's event carries at most (``NpsUpdated.spend``).
MAX_CELL_CURRENCIES = 20


class CellSpend(BaseModel):
    """For one currency, the 12-month spend snapshots (``SurveyContext.spend_12m``) of a cell's
    answers summed per group, in minor units and never converted; answers without one add nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    promoters: int = Field(ge=0)
    passives: int = Field(ge=0)
    detractors: int = Field(ge=0)


class NpsUpdated(Contract):
    """A score changed: the counts of one touchpoint, in one window, for everybody or one segment.

    ``version`` grows with every change of that one cell (touchpoint, window, segment): a consumer
    keeps the highest it has seen, so redeliveries and reordering are harmless.
    """

    event_type = "nps.updated.v1"
    topic = topics.SCORES

    touchpoint: Touchpoint
    promoters: int = Field(ge=0)
    passives: int = Field(ge=0)
    detractors: int = Field(ge=0)
    responses: int = Field(ge=0)
    nps: float = Field(ge=-100, le=100)
    as_of: Timestamp
    distribution: Distribution | None = None
    confidence_interval: NpsInterval | None = None
    window: NpsWindow = Field(default_factory=NpsWindow)
    segment: NpsSegment | None = None
    version: int | None = Field(default=None, ge=1)
    #: A cell's spend per currency, in currency order (at most 20: scoring keeps every currency but
    #: announces the first 20 in that order); None on the all-time score and on older events.
    spend: list[CellSpend] | None = Field(default=None, max_length=MAX_CELL_CURRENCIES)


CaseStatus = Literal["open", "contacted", "resolved"]
#: Score 0-4 is urgent ("ready to trash you on social media"), 5-6 normal: which SLA applies.
Priority = Literal["urgent", "normal"]


class FollowupOpened(Contract):
    event_type = "followup.opened.v1"
    topic = topics.FOLLOWUPS

    case_id: uuid.UUID
    response_id: uuid.UUID
    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    score: Score
    owner_email: Email | None = None
    opened_at: Timestamp
    due_at: Timestamp
    priority: Priority | None = None
    #: Where routing placed the case, and why (the rule's name and the conditions that held).
    assignee_user_id: uuid.UUID | None = None
    assignee_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    team_id: uuid.UUID | None = None
    team_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    routing_reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class FollowupUpdated(Contract):
    """The case as it now stands. The optional fields are the whole current state, not a change:
    a consumer keeps the newest by ``updated_at``."""

    event_type = "followup.updated.v1"
    topic = topics.FOLLOWUPS

    case_id: uuid.UUID
    status: CaseStatus
    breached: bool
    updated_at: Timestamp
    touchpoint: Touchpoint | None = None
    priority: Priority | None = None
    assignee_user_id: uuid.UUID | None = None
    assignee_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    team_id: uuid.UUID | None = None
    team_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    opened_at: Timestamp | None = None
    #: The first time somebody reached the customer, and how long after the answer (wall clock).
    contacted_at: Timestamp | None = None
    seconds_to_contact: float | None = Field(default=None, ge=0)
    #: Whether the first contact came within the SLA's first-contact time (business hours).
    contact_within_sla: bool | None = None
    resolved_at: Timestamp | None = None
    seconds_to_resolution: float | None = Field(default=None, ge=0)
    root_cause: Annotated[str, StringConstraints(max_length=100)] | None = None
    #: The recovery survey's score, once the customer answered it.
    recovery_score: Score | None = None


class FollowupRecoveryDue(Contract):
    """A resolved case's recovery survey is due: ask the customer the NPS question once more, to
    learn whether following up won them back. The trigger decides (it knows unsubscribes) and asks
    the survey service for it."""

    event_type = "followup.recovery_due.v1"
    topic = topics.FOLLOWUPS

    case_id: uuid.UUID
    response_id: uuid.UUID
    customer_id: Identifier
    email: Email
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    touchpoint: Touchpoint
    score: Score
    resolved_at: Timestamp
    root_cause: Annotated[str, StringConstraints(max_length=100)] | None = None
    due_at: Timestamp


DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TenantCreated(Contract):
    event_type = "tenant.created.v1"
    topic = topics.TENANTS

    tenant_id: uuid.UUID
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    owner_email: Email | None = None
    created_at: Timestamp
    #: How the company is named to its customers, e.g. in the survey email; the name (a slug) if unset.
    display_name: DisplayName | None = None


class TenantUpdated(Contract):
    """A tenant's details changed: the whole current state, so a repeat or a late copy is harmless."""

    event_type = "tenant.updated.v1"
    topic = topics.TENANTS

    tenant_id: uuid.UUID
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    owner_email: Email | None = None
    display_name: DisplayName | None = None
    updated_at: Timestamp


#: Months a tenant keeps a kind of personal data: 1 to 120, or None to keep it.
RetentionMonths = Annotated[int, Field(ge=1, le=120)] | None


class TenantRetentionSet(Contract):
    """A tenant's retention (``PUT /v1/privacy/retention`` on the trigger): after how many months
    each service removes customers' comments and anonymises invitations; None keeps them. The whole
    current state, so a repeat or a late copy is harmless. A new event rather than more fields on
    ``tenant.updated.v1``, whose consumers replace the whole tenant row: an older producer's update
    would otherwise reset the retention."""

    event_type = "tenant.retention_set.v1"
    topic = topics.TENANTS

    tenant_id: uuid.UUID
    comments_months: RetentionMonths = None
    invitations_months: RetentionMonths = None
    updated_at: Timestamp


class ApiKeyCreated(Contract):
    event_type = "apikey.created.v1"
    topic = topics.TENANTS

    key_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{16}$")]
    tenant_id: uuid.UUID
    key_hash: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{64}$")]
    created_at: Timestamp


class ApiKeyRevoked(Contract):
    event_type = "apikey.revoked.v1"
    topic = topics.TENANTS

    key_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{16}$")]
    tenant_id: uuid.UUID
    revoked_at: Timestamp


class SessionStarted(Contract):
    """A person signed in at the case desk; every service with pages keeps the session so that one
    sign-in opens them all. Only the token's SHA-256 travels."""

    event_type = "session.started.v1"
    topic = topics.TENANTS

    session_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{16}$")]
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: Literal["agent", "team_lead", "cx_manager", "admin"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    token_hash: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{64}$")]
    started_at: Timestamp
    expires_at: Timestamp


class SessionEnded(Contract):
    """A person signed out, or was deactivated: the session stops working everywhere."""

    event_type = "session.ended.v1"
    topic = topics.TENANTS

    session_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{16}$")]
    tenant_id: uuid.UUID
    ended_at: Timestamp


#: Every public contract: what may travel between the services.
PUBLIC_CONTRACTS: tuple[type[Contract], ...] = (
    PurchaseCompleted,
    TicketClosed,
    OrderCancelled,
    CustomerUpserted,
    CustomerUnsubscribed,
    CustomerResubscribed,
    CustomerErased,
    SurveyCancelled,
    SurveyRequested,
    SurveySent,
    SurveyResponded,
    SurveyResponseUpdated,
    SurveyOpened,
    SurveyClicked,
    SurveyReminded,
    SurveyBounced,
    SurveyUnsubscribed,
    SurveyExpired,
    SurveyFailed,
    SuppressionLifted,
    PurchaseRecorded,
    NpsUpdated,
    FollowupOpened,
    FollowupUpdated,
    FollowupRecoveryDue,
    TenantCreated,
    TenantUpdated,
    TenantRetentionSet,
    ApiKeyCreated,
    ApiKeyRevoked,
    SessionStarted,
    SessionEnded,
    ErasureRequested,
    ErasureCompleted,
)

#: Every public contract: event type -> (data model, the topic it travels on).
CONTRACTS: dict[str, tuple[type[Contract], str]] = {c.event_type: (c, c.topic) for c in PUBLIC_CONTRACTS}

PURCHASE_COMPLETED = PurchaseCompleted.event_type
TICKET_CLOSED = TicketClosed.event_type
ORDER_CANCELLED = OrderCancelled.event_type
CUSTOMER_UPSERTED = CustomerUpserted.event_type
CUSTOMER_UNSUBSCRIBED = CustomerUnsubscribed.event_type
CUSTOMER_RESUBSCRIBED = CustomerResubscribed.event_type
CUSTOMER_ERASED = CustomerErased.event_type
ERASURE_REQUESTED = ErasureRequested.event_type
ERASURE_COMPLETED = ErasureCompleted.event_type
SURVEY_CANCELLED = SurveyCancelled.event_type
SURVEY_REQUESTED = SurveyRequested.event_type
SURVEY_SENT = SurveySent.event_type
SURVEY_RESPONDED = SurveyResponded.event_type
SURVEY_RESPONSE_UPDATED = SurveyResponseUpdated.event_type
SURVEY_OPENED = SurveyOpened.event_type
SURVEY_CLICKED = SurveyClicked.event_type
SURVEY_REMINDED = SurveyReminded.event_type
SURVEY_BOUNCED = SurveyBounced.event_type
SURVEY_UNSUBSCRIBED = SurveyUnsubscribed.event_type
SURVEY_EXPIRED = SurveyExpired.event_type
SURVEY_FAILED = SurveyFailed.event_type
SUPPRESSION_LIFTED = SuppressionLifted.event_type
PURCHASE_RECORDED = PurchaseRecorded.event_type
NPS_UPDATED = NpsUpdated.event_type
FOLLOWUP_OPENED = FollowupOpened.event_type
FOLLOWUP_UPDATED = FollowupUpdated.event_type
FOLLOWUP_RECOVERY_DUE = FollowupRecoveryDue.event_type
TENANT_CREATED = TenantCreated.event_type
TENANT_UPDATED = TenantUpdated.event_type
TENANT_RETENTION_SET = TenantRetentionSet.event_type
APIKEY_CREATED = ApiKeyCreated.event_type
APIKEY_REVOKED = ApiKeyRevoked.event_type
SESSION_STARTED = SessionStarted.event_type
SESSION_ENDED = SessionEnded.event_type

#: What producers may send in: to ``POST /v1/events`` or straight onto the intake topics.
INTAKE_TYPES = frozenset(
    {
        PURCHASE_COMPLETED,
        TICKET_CLOSED,
        ORDER_CANCELLED,
        CUSTOMER_UPSERTED,
        CUSTOMER_UNSUBSCRIBED,
        CUSTOMER_RESUBSCRIBED,
        CUSTOMER_ERASED,
    }
)


def _valid_traceparent(value: Any) -> str | None:
    """A ``traceparent`` that is not a W3C trace context is dropped, never refused: tracing must not
    cost anybody an event. The work it leads to starts a trace of its own."""
    if not isinstance(value, str) or len(value) > 128:
        return None
    return value if tracing.link_to({tracing.TRACEPARENT: value}) is not None else None


def _valid_tracestate(value: Any) -> str | None:
    # W3C caps tracestate at 32 members of 256 characters; 512 keeps what real tracers send.
    return value if isinstance(value, str) and len(value) <= 512 else None


class Envelope(BaseModel):
    """CloudEvents 1.0 context attributes. ``data`` stays a dict here; see :func:`decode`.

    ``traceparent`` and ``tracestate`` are the CloudEvents Distributed Tracing extension: the trace
    context the event was made in (:mod:`libs.common.tracing`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    tenantid: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    time: Timestamp | None = None
    subject: Annotated[str, StringConstraints(max_length=500)] | None = None
    datacontenttype: str | None = "application/json"
    traceparent: Annotated[str | None, BeforeValidator(_valid_traceparent)] = None
    tracestate: Annotated[str | None, BeforeValidator(_valid_tracestate)] = None
    data: dict[str, Any]

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


C = TypeVar("C", bound=Contract)


def _tenant_of(tenantid: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(tenantid)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Event(Generic[C]):
    """An envelope whose data has been validated against its contract. The tenant id is parsed once,
    as the envelope is taken in; :attr:`tenant` is it, typed."""

    envelope: Envelope
    data: C
    _tenant: uuid.UUID | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tenant", _tenant_of(self.envelope.tenantid))

    @property
    def tenant(self) -> uuid.UUID:
        """The tenant, or :class:`InvalidEvent` when the ``tenantid`` is not a tenant id (a UUID):
        such an event can never belong to a tenant, and the consumer dead-letters it on arrival."""
        if self._tenant is None:
            raise InvalidEvent(
                f"tenantid: {self.envelope.tenantid[:100]!r} is not a tenant id", "invalid_envelope"
            )
        return self._tenant

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenantid


#: What was wrong with an event, from a closed set (the DLQ's ``nps-dlq-code`` and its metric's
#: label); the words are in ``reason``.
InvalidCode = Literal["undecodable", "invalid_envelope", "unknown_type", "invalid_data", "nul_character"]


class InvalidEvent(ValueError):
    """An event that cannot be accepted. ``reason`` names the problem for a person to read;
    ``code`` says which kind of problem it is, from a closed set."""

    def __init__(self, reason: str, code: InvalidCode = "invalid_envelope") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code: InvalidCode = code


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    parts = []
    for item in error.errors()[:5]:
        location = ".".join(str(p) for p in item["loc"])
        field = f"{prefix}{location}" if location else prefix.rstrip(".") or "event"
        parts.append(f"{field}: {item['msg']}")
    return "; ".join(parts)


def find_nul(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding a NUL character, else ``None``.

    JSON allows ``\\u0000``; Postgres text does not, so such a value would fail the whole
    transaction it is written in (and with it every other event of the batch)."""
    if isinstance(value, str):
        return (path or "value") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return f"{path}.<key>" if path else "<key>"
            found = find_nul(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def validate(raw: Any, *, allowed_types: frozenset[str] | None = None) -> Event[Contract]:
    """Validate a structured-mode CloudEvent (already JSON-decoded) and its typed data."""
    if not isinstance(raw, dict):
        raise InvalidEvent("event must be a JSON object", "undecodable")
    nul = find_nul(raw)
    if nul is not None:
        raise InvalidEvent(f"{nul}: must not contain the NUL character (\\u0000)", "nul_character")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error), "invalid_envelope") from None
    contract = CONTRACTS.get(envelope.type)
    if contract is None or (allowed_types is not None and envelope.type not in allowed_types):
        accepted = sorted(allowed_types if allowed_types is not None else CONTRACTS)
        raise InvalidEvent(
            f"type: unknown event type {envelope.type!r}; accepted: {', '.join(accepted)}", "unknown_type"
        )
    try:
        data = contract[0].model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error, "data."), "invalid_data") from None
    return Event(envelope=envelope, data=data)


def decode_structured(payload: bytes, **kwargs: Any) -> Event[Contract]:
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"body is not valid JSON: {error}", "undecodable") from None
    return validate(raw, **kwargs)


def decode_binary(headers: dict[str, bytes], payload: bytes, **kwargs: Any) -> Event[Contract]:
    """Binary content mode: attributes in ``ce_*`` headers, the data as the message value."""
    raw: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith("ce_"):
            try:
                raw[name[3:]] = value.decode()
            except UnicodeDecodeError:
                raise InvalidEvent(f"header {name} is not UTF-8", "undecodable") from None
    try:
        raw["data"] = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"data is not valid JSON: {error}", "undecodable") from None
    return validate(raw, **kwargs)


def decode_kafka(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], payload: bytes | None, **kwargs: Any
) -> Event[Contract]:
    """Decode a Kafka record in either CloudEvents content mode."""
    if payload is None:
        raise InvalidEvent("message has no value (tombstone)", "undecodable")
    header_map = {name.lower(): value for name, value in headers}
    if "ce_specversion" in header_map:
        return decode_binary(header_map, payload, **kwargs)
    return decode_structured(payload, **kwargs)


def new_event(
    event_type: str,
    *,
    tenant_id: str,
    data: Contract,
    subject: str | None,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Event[Contract]:
    """Build a platform event of a type named by its string. Emitting code passes the contract alone
    (``uow.emit(contract, ...)``, :meth:`Contract.event`); this stays for tests and tools that name
    the type. A step type also accepts the shared :class:`SurveyStep` base, read as its own class."""
    expected = CONTRACTS[event_type][0]
    if type(data) is not expected and issubclass(expected, type(data)):
        data = expected.model_validate(data.model_dump())
    if not isinstance(data, expected):
        raise TypeError(f"{event_type} carries {expected.__name__}, not {type(data).__name__}")
    return data.event(tenant_id=tenant_id, subject=subject, source=source, event_id=event_id, time=time)


def topic_of(event_type: str) -> str:
    return CONTRACTS[event_type][1]
