"""The survey's tables, in schema ``survey``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
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

    __table_args__ = (
        Index("ux_invitations_token_hash", "token_hash", unique=True),
        Index("ix_invitations_customer", "tenant_id", "customer_id", "created_at"),
        # The sender's two scans, each kept to the few rows that can be due.
        Index("ix_invitations_due", "send_at", postgresql_where=text("status = 'scheduled'")),
        Index("ix_invitations_sending", "sending_started_at", postgresql_where=text("status = 'sending'")),
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

    __table_args__ = (
        Index("ux_responses_invitation", "invitation_id", unique=True),
        Index("ix_responses_tenant", "tenant_id", "responded_at"),
        CheckConstraint("score BETWEEN 0 AND 10", name="ck_responses_score"),
    )
