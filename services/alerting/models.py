"""The alerting service's tables, in schema ``alerting``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables

SCHEMA = "alerting"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)


class FollowupCase(Base):
    """One detractor answer that somebody has to follow up, with its SLA clock."""

    __tablename__ = "followup_cases"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    response_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_id: Mapped[str] = mapped_column(String(200))
    # Unknown while only a revision of the answer has arrived: revisions do not repeat the address.
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    touchpoint: Mapped[str] = mapped_column(String(63))
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    recommended: Mapped[bool | None] = mapped_column(Boolean)
    csat: Mapped[int | None] = mapped_column(SmallInteger)
    effort: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(20))
    #: Why a resolved case was resolved (``Resolution``); null until then.
    resolution: Mapped[str | None] = mapped_column(String(20))
    owner_email: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    contacted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # One case per answer, however often the answer is delivered.
        UniqueConstraint("response_id", name="uq_followup_cases_response_id"),
        CheckConstraint("status IN ('open', 'contacted', 'resolved')", name="ck_followup_cases_status"),
        CheckConstraint("score BETWEEN 0 AND 10", name="ck_followup_cases_score"),
        Index("ix_followup_cases_tenant_opened", "tenant_id", "opened_at"),
        # The SLA check only ever scans cases that can still breach.
        Index(
            "ix_followup_cases_breachable",
            "due_at",
            postgresql_where=text("status = 'open' AND breached_at IS NULL"),
        ),
    )


class Answer(Base):
    """The current version of every answer this service has heard of, detractor or not.

    Kept for all answers because a later revision can turn any of them into a detractor, and so that
    an older or repeated revision is recognised as such.
    """

    __tablename__ = "answers"
    response_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_id: Mapped[str] = mapped_column(String(200))
    # Only ``survey.responded`` carries them; a revision that overtook it leaves them unknown.
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    touchpoint: Mapped[str] = mapped_column(String(63))
    revision: Mapped[int] = mapped_column(Integer)
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    recommended: Mapped[bool | None] = mapped_column(Boolean)
    csat: Mapped[int | None] = mapped_column(SmallInteger)
    effort: Mapped[int | None] = mapped_column(SmallInteger)
    responded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """An email to send, written in the same transaction as the change it tells of; the notifier
    loop sends it afterwards, so a slow or absent mail server never holds up a case."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    # Queued "now" by the database's clock: the caller's ``now`` may be an SLA check's chosen instant.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("case_id", "kind", name="uq_notifications_case_kind"),
        Index(
            "ix_notifications_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )
