"""Reporting's read model, in schema ``reporting``: its own copy of what the events said.

Rows are facts keyed by the ids the events carry, so a redelivered or replayed event lands on the
row it made the first time.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, MetaData, SmallInteger, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables

SCHEMA = "reporting"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)


class InvitationSent(Base):
    __tablename__ = "invitations_sent"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_invitations_sent_tenant_sent_at", "tenant_id", "sent_at"),)


class Response(Base):
    __tablename__ = "responses"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    touchpoint: Mapped[str] = mapped_column(String(63))
    score: Mapped[int] = mapped_column(SmallInteger)
    responded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_responses_tenant_responded_at", "tenant_id", "responded_at"),)


class FollowupCase(Base):
    """A follow-up case. Touchpoint, opened_at and due_at are unknown (null) while only an update
    has arrived; the opening fills them in."""

    __tablename__ = "cases"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str | None] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(20))
    breached: Mapped[bool] = mapped_column(Boolean)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
