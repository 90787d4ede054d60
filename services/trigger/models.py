"""The trigger's tables, in schema ``trigger``."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables

SCHEMA = "trigger"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)


class Customer(Base):
    """The rest-period clock of one customer of one tenant."""

    __tablename__ = "customers"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_invited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(200))
    last_responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suppressed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suppression_reason: Mapped[str | None] = mapped_column(String(20))
    #: Requested or sent, and not yet answered, expired, failed or cancelled.
    outstanding_invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: From ``customer.upserted.v1``: who owns the account, and the customer's routing attributes.
    account_owner_email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, str] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_customers_email_lower", "tenant_id", func.lower(email)),
        Index("ix_customers_account", "tenant_id", "account_id"),
    )


class CustomerTouchpoint(Base):
    """The per-touchpoint rest-period clock."""

    __tablename__ = "customer_touchpoints"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    last_invited_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SourceRecord(Base):
    """One order or ticket (``order:<id>``), decided once; remembers its invitation so that a
    cancellation or refund can withdraw it."""

    __tablename__ = "source_records"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(220), primary_key=True)
    #: The touchpoint it was decided for; ``*`` marks an order cancelled before it was decided.
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_source_records_customer", "tenant_id", "customer_id", "decided_at", "source_ref", "touchpoint"
        ),
    )


class Touchpoint(Base):
    """One version of a tenant's touchpoint. A change adds a version; decisions name the version."""

    __tablename__ = "touchpoints"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QuotaUsage(Base):
    __tablename__ = "quota_usage"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    invited: Mapped[int] = mapped_column(Integer)


class Decision(Base):
    """One recorded decision per accepted event: invited, or skipped with a reason."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str] = mapped_column(String(200))
    touchpoint: Mapped[str | None] = mapped_column(String(63))
    touchpoint_version: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40))
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    rest_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rest_period_days: Mapped[int] = mapped_column(Integer)
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str | None] = mapped_column(String(300))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_decisions_customer", "tenant_id", "customer_id", "decided_at", "id"),
        Index("ux_decisions_event", "tenant_id", "event_id", unique=True),
        #: The decisions export reads a tenant's range in (decided_at, id) order, in keyset batches.
        Index("ix_decisions_tenant_time", "tenant_id", "decided_at", "id"),
    )


class Purchase(Base):
    """What a customer spent on one order, once per (tenant, order): in the minor units of its own
    currency (never converted), for the spend snapshot each survey request carries."""

    __tablename__ = "purchases"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    #: ISO 4217, e.g. ``DKK``.
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_purchases_customer",
            "tenant_id",
            "customer_id",
            "occurred_at",
            "order_id",
            postgresql_include=["currency", "amount_minor"],
        ),
        CheckConstraint("amount_minor >= 0", name="ck_purchases_amount"),
    )


class Policy(Base):
    """Per-tenant settings of the rules."""

    __tablename__ = "policies"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    rest_period_days: Mapped[int] = mapped_column(Integer)
    rest_clock: Mapped[str] = mapped_column(String(20), server_default="invitation")


class CohortPick(Base):
    """An account drawn for a relationship survey: in which round, and which period."""

    __tablename__ = "cohort_picks"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    period: Mapped[str] = mapped_column(String(20))
    picked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_cohort_picks_period", "tenant_id", "touchpoint", "period"),)


class WebhookEndpoint(Base):
    """One configured webhook receiver. Its id is in the URL the platform posts to and names the
    tenant, because a webhook cannot carry our API key."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    platform: Mapped[str] = mapped_column(String(20))
    # Kept in clear on purpose: checking an HMAC needs the key itself, and a hash of it could not
    # sign anything. Read access to this table is read access to every tenant's webhook keys.
    secret: Mapped[str] = mapped_column(Text)
    #: Only for the generic platform: where the fields sit in the body, and how it is signed.
    mapping: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_endpoints_tenant", "tenant_id", "created_at"),
        CheckConstraint(
            "platform IN ('shopify', 'woocommerce', 'zendesk', 'freshdesk', 'generic', "
            "'stripe', 'intercom', 'zammad', 'helpscout', 'bigcommerce')",
            name="ck_webhook_endpoints_platform",
        ),
    )


class BigCommerceStore(Base):
    """The store a BigCommerce receiver fetches orders from, and the API token it does it with."""

    __tablename__ = "bigcommerce_stores"
    endpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    store_hash: Mapped[str] = mapped_column(String(64))
    # In clear, as webhook secrets are: the token is sent as it is. It is never logged and never
    # returned after the receiver is created.
    access_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderFetch(Base):
    """A genuine thin delivery waiting for its order to be fetched (the durable job row), then what
    came of it: decided, ignored (with the reason) or failed (with the reason)."""

    __tablename__ = "order_fetches"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    endpoint_id: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(20))
    #: The platform's delivery id (BigCommerce: webhook-id, else the payload's hash); a replay is a duplicate.
    delivery_id: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(63))
    order_id: Mapped[str] = mapped_column(String(40))
    #: queued, decided, ignored or failed.
    state: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    #: When a queued fetch may be claimed: now, after a backoff, or after a claim's lease.
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ux_order_fetches_delivery", "tenant_id", "platform", "delivery_id", unique=True),
        Index("ix_order_fetches_due", "due_at", postgresql_where=text("state = 'queued'")),
        Index("ix_order_fetches_endpoint", "tenant_id", "endpoint_id", "received_at"),
        CheckConstraint("state IN ('queued', 'decided', 'ignored', 'failed')", name="ck_order_fetches_state"),
    )


class Erasure(Base):
    """A customer's erasure: its receipt, and the tombstone that keeps events from before it out.

    Holds no personal data: the customer is a keyed hash of the id (``libs/common/erasure.py``), each
    service's part is its status, time and counts of rows removed or anonymised."""

    __tablename__ = "erasures"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_key: Mapped[str] = mapped_column(String(64))
    #: When the customer asked; events about them from before it are not taken in again.
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: ``api`` (DELETE /v1/customers/{id}) or ``event`` (customer.erased.v1).
    origin: Mapped[str] = mapped_column(String(10))
    #: service -> {"status": "pending" | "completed", "completed_at": ..., "counts": {kind: rows}}
    services: Mapped[dict[str, Any]] = mapped_column(JSONB)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_erasures_customer", "tenant_id", "customer_key", "requested_at"),)
