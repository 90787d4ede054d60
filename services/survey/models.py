"""The survey's tables, in schema ``survey``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables

SCHEMA = "survey"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)


class Invitation(Base):
    """One person asked once: who, about what, where delivery stands, and whether they answered.

    The link's token is never stored, only its SHA-256 (``token_hash``) to find the invitation.
    """

    __tablename__ = "invitations"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    touchpoint: Mapped[str] = mapped_column(String(63))
    trigger_event_id: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    send_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    sending_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Chosen when the invitation is sent; the pages use it too.
    language: Mapped[str | None] = mapped_column(String(8))
    # The funnel after sending, each the first time it happened.
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    clicked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminder_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expiry_recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Why it failed for good: a code of ``domain.delivery.FailureReason``; ``last_error`` has the detail.
    failure_reason: Mapped[str | None] = mapped_column(String(30))
    #: Withdrawn by the trigger after it was sent (the order refunded, the customer unsubscribed):
    #: the email is out, but no reminder follows it.
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The request's ``context`` (a ``SurveyContext`` as JSON), passed on with the answer.
    context: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    #: The W3C ``traceparent`` / ``tracestate`` of the request: its sending and its answer continue it.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ux_invitations_token_hash", "token_hash", unique=True),
        # Bounce reports name an address, not an invitation.
        Index("ix_invitations_email", func.lower(text("email"))),
        # The lifecycle loop's two scans: reminders due, and sent invitations that expire unanswered.
        Index(
            "ix_invitations_reminder_due",
            "reminder_due_at",
            postgresql_where=text("reminded_at IS NULL AND responded_at IS NULL"),
        ),
        Index(
            "ix_invitations_expiring",
            "expires_at",
            postgresql_where=text("status = 'sent' AND expiry_recorded_at IS NULL"),
        ),
        Index("ix_invitations_customer", "tenant_id", "customer_id", "created_at", "id"),
        # The sender's two scans, each kept to the few rows that can be due.
        Index("ix_invitations_due", "send_at", postgresql_where=text("status = 'scheduled'")),
        Index("ix_invitations_sending", "sending_started_at", postgresql_where=text("status = 'sending'")),
        Index("ix_invitations_failed", "tenant_id", "created_at", postgresql_where=text("status = 'failed'")),
        # The retention job's scan: invitations that still name someone.
        Index("ix_invitations_retention", "tenant_id", "created_at", postgresql_where=text("email <> ''")),
        CheckConstraint(
            "status IN ('scheduled', 'sending', 'sent', 'failed', 'responded', 'cancelled')",
            name="ck_invitations_status",
        ),
    )


class Response(Base):
    """The one answer to an invitation. Its id is derived from the invitation's, so it is unique."""

    __tablename__ = "responses"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_id: Mapped[str] = mapped_column(String(200))
    touchpoint: Mapped[str] = mapped_column(String(63))
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    responded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recommended: Mapped[bool | None] = mapped_column(Boolean)
    csat: Mapped[int | None] = mapped_column(SmallInteger)
    effort: Mapped[int | None] = mapped_column(SmallInteger)
    #: 1 for the first answer, one more for each change: consumers apply only a higher revision.
    revision: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ux_responses_invitation", "invitation_id", unique=True),
        Index("ix_responses_tenant", "tenant_id", "responded_at"),
        # An erasure finds the customer's answers by this.
        Index("ix_responses_customer", "tenant_id", "customer_id", "responded_at", "id"),
        # The retention job's scan (services/survey/repository.py, apply_retention).
        Index(
            "ix_responses_retention_comment",
            "tenant_id",
            "responded_at",
            postgresql_where=text("comment IS NOT NULL"),
        ),
        CheckConstraint("score BETWEEN 0 AND 10", name="ck_responses_score"),
        CheckConstraint("csat BETWEEN 1 AND 5", name="ck_responses_csat"),
        CheckConstraint("effort BETWEEN 1 AND 7", name="ck_responses_effort"),
    )


class Suppression(Base):
    """An address this tenant must not email: unsubscribed, hard-bounced or complained. Only the
    address's keyed hash is kept (``domain.suppression``), so it survives the customer's erasure."""

    __tablename__ = "suppressions"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    suppressed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TenantSettings(Base):
    """A tenant's survey look and habits (branding, default language, reminders, sending rate), and
    per touchpoint the wording and follow-up questions; validated by ``schemas``."""

    __tablename__ = "tenant_settings"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    #: "" for the tenant-wide settings, else the touchpoint's name.
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    config: Mapped[dict[str, object]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RateBucket(Base):
    """One GCRA bucket shared by every replica (a tenant's sending rate, a client or a link of
    the public pages): ``tat`` is its theoretical arrival time, in seconds of the Unix epoch."""

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tat: Mapped[float] = mapped_column(Float(precision=53))
    __table_args__ = (Index("rate_buckets_tat", "tat"),)


class RateSlot(Base):
    """The slot an invitation put back by its tenant's rate was given, paid for already: when it
    comes back, on whichever replica, it goes without asking the rate again."""

    __tablename__ = "rate_slots"
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    at: Mapped[float] = mapped_column(Float(precision=53))
    __table_args__ = (Index("rate_slots_at", "at"),)


class ErasedCustomer(Base):
    """A tombstone of an erased customer, by a keyed hash of their id (never the id): a survey request
    the trigger made before the erasure that arrives after it is not scheduled."""

    __tablename__ = "erased_customers"
    erasure_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_key: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_erased_customers_key", "tenant_id", "customer_key", "requested_at"),)
