"""The event envelope (CloudEvents 1.0) and every typed, versioned event contract.

An event on the wire is a CloudEvent in structured mode (a JSON object) or binary mode (``ce_``
headers plus the data as the body). The tenant travels as the ``tenantid`` extension attribute.
``data`` is validated against the contract registered for the event ``type``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from libs.common import topics

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
Score = Annotated[int, Field(ge=0, le=10)]


class Contract(BaseModel):
    """Base of every event's ``data``: frozen, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- Producer events (webshops and support systems) -------------------------------------------


TimeZone = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}$|^UTC$", max_length=64)
]
Status = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]


class PurchaseCompleted(Contract):
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


class TicketClosed(Contract):
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


class OrderCancelled(Contract):
    """An order was cancelled, refunded or voided: a pending survey about it must not go out."""

    order_id: Identifier
    customer_id: Identifier
    reason: Literal["cancelled", "refunded", "voided"]
    occurred_at: Timestamp | None = None


class CustomerUpserted(Contract):
    """A customer (a contact) as the source system knows it; B2B contacts name their account."""

    customer_id: Identifier
    email: Email | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    account_id: Identifier | None = None
    account_name: Annotated[str, StringConstraints(max_length=200)] | None = None


class CustomerUnsubscribed(Contract):
    """The customer may not be surveyed again until they re-subscribe: an unsubscribe, a hard bounce
    or a complaint. Either the customer id or the email address identifies them."""

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
    customer_id: Identifier
    occurred_at: Timestamp | None = None


# --- Platform events ------------------------------------------------------------------------


class SurveyRequested(Contract):
    invitation_id: uuid.UUID
    customer_id: Identifier
    email: Email
    name: str | None = None
    locale: Locale | None = None
    touchpoint: Touchpoint
    trigger_event_id: Identifier
    trigger_event_type: str
    send_at: Timestamp


class RelationshipDue(Contract):
    """Internal to the trigger: a contact of an account drawn for a relationship survey this period.
    Producers cannot send it; it exists so that cohort invitations pass the same rules and records."""

    touchpoint: Touchpoint
    period: Annotated[str, StringConstraints(max_length=20)]
    account_id: Identifier
    customer_id: Identifier
    email: Email | None = None


class SurveyCancelled(Contract):
    """The trigger withdraws an invitation that has not been sent yet."""

    invitation_id: uuid.UUID
    customer_id: Identifier
    reason: Literal["cancelled", "unsubscribed"]


class SurveySent(Contract):
    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    sent_at: Timestamp


class SurveyResponded(Contract):
    response_id: uuid.UUID
    invitation_id: uuid.UUID
    customer_id: Identifier
    email: Email
    name: str | None = None
    touchpoint: Touchpoint
    score: Score
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None
    responded_at: Timestamp


class SurveyResponseUpdated(Contract):
    """The respondent added to, or changed, an answer already announced by ``survey.responded``.

    Always the whole current answer, never a delta, with a ``revision`` that grows by one per
    change: a consumer applies an update only if its revision is higher than the one it holds, so
    duplicates and reordering are harmless. ``score`` may differ from the responded score only
    inside the short grace period after the first answer.
    """

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


class SurveyStep(Contract):
    """One step of an invitation's funnel after sending: opened (tracking pixel), clicked (a link
    in the email was followed), reminded, bounced, unsubscribed or expired unanswered."""

    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    at: Timestamp
    #: Opened: a machine fetched the pixel (Apple Mail Privacy Protection, a mail gateway on
    #: delivery, a script), which says the email arrived, not that anybody read it.
    machine: bool = False


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

    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    at: Timestamp
    reason: FailureReason
    detail: Annotated[str, StringConstraints(max_length=500)] | None = None


class SuppressionLifted(Contract):
    """The trigger tells the survey that a customer re-subscribed: their address may be emailed
    again (the survey keeps its own suppression list, by address)."""

    customer_id: Identifier
    email: Email
    at: Timestamp


class NpsUpdated(Contract):
    touchpoint: Touchpoint
    promoters: int = Field(ge=0)
    passives: int = Field(ge=0)
    detractors: int = Field(ge=0)
    responses: int = Field(ge=0)
    nps: float = Field(ge=-100, le=100)
    as_of: Timestamp


CaseStatus = Literal["open", "contacted", "resolved"]


class FollowupOpened(Contract):
    case_id: uuid.UUID
    response_id: uuid.UUID
    invitation_id: uuid.UUID
    customer_id: Identifier
    touchpoint: Touchpoint
    score: Score
    owner_email: Email | None = None
    opened_at: Timestamp
    due_at: Timestamp


class FollowupUpdated(Contract):
    case_id: uuid.UUID
    status: CaseStatus
    breached: bool
    updated_at: Timestamp


DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TenantCreated(Contract):
    tenant_id: uuid.UUID
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    owner_email: Email | None = None
    created_at: Timestamp
    #: How the company is named to its customers, e.g. in the survey email; the name (a slug) if unset.
    display_name: DisplayName | None = None


class TenantUpdated(Contract):
    """A tenant's details changed: the whole current state, so a repeat or a late copy is harmless."""

    tenant_id: uuid.UUID
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    owner_email: Email | None = None
    display_name: DisplayName | None = None
    updated_at: Timestamp


class ApiKeyCreated(Contract):
    key_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{16}$")]
    tenant_id: uuid.UUID
    key_hash: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{64}$")]
    created_at: Timestamp


class ApiKeyRevoked(Contract):
    key_id: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{16}$")]
    tenant_id: uuid.UUID
    revoked_at: Timestamp


PURCHASE_COMPLETED = "purchase.completed.v1"
TICKET_CLOSED = "ticket.closed.v1"
ORDER_CANCELLED = "order.cancelled.v1"
CUSTOMER_UPSERTED = "customer.upserted.v1"
CUSTOMER_UNSUBSCRIBED = "customer.unsubscribed.v1"
CUSTOMER_RESUBSCRIBED = "customer.resubscribed.v1"
SURVEY_CANCELLED = "survey.cancelled.v1"
RELATIONSHIP_DUE = "relationship.due.v1"
SURVEY_REQUESTED = "survey.requested.v1"
SURVEY_SENT = "survey.sent.v1"
SURVEY_RESPONDED = "survey.responded.v1"
SURVEY_RESPONSE_UPDATED = "survey.response_updated.v1"
SURVEY_OPENED = "survey.opened.v1"
SURVEY_CLICKED = "survey.clicked.v1"
SURVEY_REMINDED = "survey.reminded.v1"
SURVEY_BOUNCED = "survey.bounced.v1"
SURVEY_UNSUBSCRIBED = "survey.unsubscribed.v1"
SURVEY_EXPIRED = "survey.expired.v1"
SURVEY_FAILED = "survey.failed.v1"
SUPPRESSION_LIFTED = "suppression.lifted.v1"
NPS_UPDATED = "nps.updated.v1"
FOLLOWUP_OPENED = "followup.opened.v1"
FOLLOWUP_UPDATED = "followup.updated.v1"
TENANT_CREATED = "tenant.created.v1"
TENANT_UPDATED = "tenant.updated.v1"
APIKEY_CREATED = "apikey.created.v1"
APIKEY_REVOKED = "apikey.revoked.v1"

#: Every contract: event type -> (data model, the topic it travels on).
CONTRACTS: dict[str, tuple[type[Contract], str]] = {
    PURCHASE_COMPLETED: (PurchaseCompleted, topics.PURCHASES),
    TICKET_CLOSED: (TicketClosed, topics.TICKETS),
    ORDER_CANCELLED: (OrderCancelled, topics.PURCHASES),
    CUSTOMER_UPSERTED: (CustomerUpserted, topics.CUSTOMERS),
    CUSTOMER_UNSUBSCRIBED: (CustomerUnsubscribed, topics.CUSTOMERS),
    CUSTOMER_RESUBSCRIBED: (CustomerResubscribed, topics.CUSTOMERS),
    SURVEY_CANCELLED: (SurveyCancelled, topics.SURVEY_REQUESTS),
    RELATIONSHIP_DUE: (RelationshipDue, topics.CUSTOMERS),
    SURVEY_REQUESTED: (SurveyRequested, topics.SURVEY_REQUESTS),
    SURVEY_SENT: (SurveySent, topics.SURVEY_EVENTS),
    SURVEY_RESPONDED: (SurveyResponded, topics.SURVEY_EVENTS),
    SURVEY_RESPONSE_UPDATED: (SurveyResponseUpdated, topics.SURVEY_EVENTS),
    SURVEY_OPENED: (SurveyStep, topics.SURVEY_EVENTS),
    SURVEY_CLICKED: (SurveyStep, topics.SURVEY_EVENTS),
    SURVEY_REMINDED: (SurveyStep, topics.SURVEY_EVENTS),
    SURVEY_BOUNCED: (SurveyStep, topics.SURVEY_EVENTS),
    SURVEY_UNSUBSCRIBED: (SurveyStep, topics.SURVEY_EVENTS),
    SURVEY_EXPIRED: (SurveyStep, topics.SURVEY_EVENTS),
    SURVEY_FAILED: (SurveyFailed, topics.SURVEY_EVENTS),
    SUPPRESSION_LIFTED: (SuppressionLifted, topics.SURVEY_REQUESTS),
    NPS_UPDATED: (NpsUpdated, topics.SCORES),
    FOLLOWUP_OPENED: (FollowupOpened, topics.FOLLOWUPS),
    FOLLOWUP_UPDATED: (FollowupUpdated, topics.FOLLOWUPS),
    TENANT_CREATED: (TenantCreated, topics.TENANTS),
    TENANT_UPDATED: (TenantUpdated, topics.TENANTS),
    APIKEY_CREATED: (ApiKeyCreated, topics.TENANTS),
    APIKEY_REVOKED: (ApiKeyRevoked, topics.TENANTS),
}

#: What producers may send in: to ``POST /v1/events`` or straight onto the intake topics.
INTAKE_TYPES = frozenset(
    {
        PURCHASE_COMPLETED,
        TICKET_CLOSED,
        ORDER_CANCELLED,
        CUSTOMER_UPSERTED,
        CUSTOMER_UNSUBSCRIBED,
        CUSTOMER_RESUBSCRIBED,
    }
)


class Envelope(BaseModel):
    """CloudEvents 1.0 context attributes. ``data`` stays a dict here; see :func:`decode`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    tenantid: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    time: Timestamp | None = None
    subject: Annotated[str, StringConstraints(max_length=500)] | None = None
    datacontenttype: str | None = "application/json"
    data: dict[str, Any]

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


C = TypeVar("C", bound=Contract)


@dataclass(frozen=True, slots=True)
class Event(Generic[C]):
    """An envelope whose data has been validated against its contract."""

    envelope: Envelope
    data: C

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenantid


class InvalidEvent(ValueError):
    """An event that cannot be accepted. ``reason`` names the problem for a person to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        raise InvalidEvent("event must be a JSON object")
    nul = find_nul(raw)
    if nul is not None:
        raise InvalidEvent(f"{nul}: must not contain the NUL character (\\u0000)")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None
    contract = CONTRACTS.get(envelope.type)
    if contract is None or (allowed_types is not None and envelope.type not in allowed_types):
        accepted = sorted(allowed_types if allowed_types is not None else CONTRACTS)
        raise InvalidEvent(f"type: unknown event type {envelope.type!r}; accepted: {', '.join(accepted)}")
    try:
        data = contract[0].model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error, "data.")) from None
    return Event(envelope=envelope, data=data)


def decode_structured(payload: bytes, **kwargs: Any) -> Event[Contract]:
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"body is not valid JSON: {error}") from None
    return validate(raw, **kwargs)


def decode_binary(headers: dict[str, bytes], payload: bytes, **kwargs: Any) -> Event[Contract]:
    """Binary content mode: attributes in ``ce_*`` headers, the data as the message value."""
    raw: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith("ce_"):
            try:
                raw[name[3:]] = value.decode()
            except UnicodeDecodeError:
                raise InvalidEvent(f"header {name} is not UTF-8") from None
    try:
        raw["data"] = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"data is not valid JSON: {error}") from None
    return validate(raw, **kwargs)


def decode_kafka(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], payload: bytes | None, **kwargs: Any
) -> Event[Contract]:
    """Decode a Kafka record in either CloudEvents content mode."""
    if payload is None:
        raise InvalidEvent("message has no value (tombstone)")
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
    """Build a platform event. Its id is random unless the caller derives one for idempotency."""
    expected = CONTRACTS[event_type][0]
    if not isinstance(data, expected):
        raise TypeError(f"{event_type} carries {expected.__name__}, not {type(data).__name__}")
    envelope = Envelope(
        specversion=SPEC_VERSION,
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=event_type,
        tenantid=tenant_id,
        time=time or datetime.now(UTC),
        subject=subject,
        data=data.model_dump(mode="json", exclude_none=True),
    )
    return Event(envelope=envelope, data=data)


def topic_of(event_type: str) -> str:
    return CONTRACTS[event_type][1]
