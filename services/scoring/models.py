"""Scoring's tables, in schema ``scoring``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables

SCHEMA = "scoring"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)


class TouchpointTally(Base):
    """Running counts of one tenant's answers about one touchpoint.

    Counts, not answers: the score is a function of the three counts, and incrementing them keeps
    both the consumer and ``GET /v1/nps`` one row per touchpoint however many answers arrive.
    """

    __tablename__ = "tallies"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    promoters: Mapped[int] = mapped_column(BigInteger)
    passives: Mapped[int] = mapped_column(BigInteger)
    detractors: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
