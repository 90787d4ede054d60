"""Scoring's tables, in schema ``scoring``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, SmallInteger, String, Uuid
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
    #: Grows by one with every answer counted or moved, so it names one version of the score even
    #: when a replaced score brings the counts back to an earlier state.
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScoredAnswer(Base):
    """The version of each answer the tallies count: which revision, and so which category.

    Kept so that a later revision can move the answer out of the category it was counted in, and
    so that an older or repeated revision is recognised as such.
    """

    __tablename__ = "answers"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63))
    score: Mapped[int] = mapped_column(SmallInteger)
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
