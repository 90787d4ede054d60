"""The trigger's tables, in schema ``trigger``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, String, Uuid
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


class Decision(Base):
    """One recorded decision per accepted event: invited, or skipped with a reason."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str] = mapped_column(String(200))
    touchpoint: Mapped[str] = mapped_column(String(63))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40))
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    rest_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rest_period_days: Mapped[int] = mapped_column(Integer)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_decisions_customer", "tenant_id", "customer_id", "decided_at"),
        Index("ux_decisions_event", "tenant_id", "event_id", unique=True),
    )


class Policy(Base):
    """Per-tenant settings of the rules."""

    __tablename__ = "policies"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    rest_period_days: Mapped[int] = mapped_column(Integer)
