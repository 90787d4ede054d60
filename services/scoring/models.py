"""Scoring's tables, in schema ``scoring``."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, MetaData, SmallInteger, String, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables

SCHEMA = "scoring"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)


class _Distribution:
    """Answers per score 0-10 (``s0`` .. ``s10``): they add up over days and segments, scores do not."""

    s0: Mapped[int] = mapped_column(BigInteger, default=0)
    s1: Mapped[int] = mapped_column(BigInteger, default=0)
    s2: Mapped[int] = mapped_column(BigInteger, default=0)
    s3: Mapped[int] = mapped_column(BigInteger, default=0)
    s4: Mapped[int] = mapped_column(BigInteger, default=0)
    s5: Mapped[int] = mapped_column(BigInteger, default=0)
    s6: Mapped[int] = mapped_column(BigInteger, default=0)
    s7: Mapped[int] = mapped_column(BigInteger, default=0)
    s8: Mapped[int] = mapped_column(BigInteger, default=0)
    s9: Mapped[int] = mapped_column(BigInteger, default=0)
    s10: Mapped[int] = mapped_column(BigInteger, default=0)


SCORE_COLUMNS = tuple(f"s{score}" for score in range(11))


class TouchpointTally(_Distribution, Base):
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
    #: Where the first version was counted, so a revision leaves exactly those cells: the UTC date
    #: of ``responded_at``, and the segments as ``[[dimension, value], ...]`` after the bound.
    responded_on: Mapped[date] = mapped_column(Date)
    segments: Mapped[list[list[str]]] = mapped_column(JSONB, default=list)
    #: The 12-month spend snapshot of the first version, ``[[currency, minor units], ...]``, so a
    #: revision moves exactly that spend to its new group.
    spend: Mapped[list[list[object]]] = mapped_column(JSONB, default=list)
    #: Whose answer it is: only an erasure reads it (by the index below), and clears it.
    customer_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index(
            "ix_answers_customer",
            "tenant_id",
            "customer_id",
            postgresql_where=text("customer_id IS NOT NULL"),
        ),
    )


class Cell(_Distribution, Base):
    """One touchpoint's answers in one segment (``''``/``''`` for everybody) and one UTC day, ISO
    week or calendar month, as counts per score. ``version`` grows with each answer counted or
    moved in the cell, and names the cell's state in ``nps.updated``."""

    __tablename__ = "cells"
    __table_args__ = (
        # GET /v1/nps over every touchpoint: one tenant's segment and bucket, by start.
        Index("cells_segment_idx", "tenant_id", "dimension", "value", "bucket", "start"),
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(5), primary_key=True)
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SpendCell(Base):
    """One cell's spend in one currency: the answers' 12-month spend snapshots summed per NPS
    group, in minor units (never converted). Beside :class:`Cell`, with the same key."""

    __tablename__ = "spend_cells"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(5), primary_key=True)
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    promoters: Mapped[int] = mapped_column(BigInteger)
    passives: Mapped[int] = mapped_column(BigInteger)
    detractors: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentValue(Base):
    """The values a tenant's dimension holds (at most 200; the rest count as ``(other)``), read
    by (tenant, dimension): the primary key's prefix."""

    __tablename__ = "segment_values"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentDimension(Base):
    """The attribute keys a tenant segments by on top of the built-in ones, in the order given."""

    __tablename__ = "segment_dimensions"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger)
