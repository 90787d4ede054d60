"""Reporting's read model, in schema ``reporting``: its own copy of what the events said.

Rows are facts keyed by the ids the events carry, so a redelivered or replayed event lands on the
row it made the first time.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables
from libs.common.sessions import add_session_table
from services.reporting.domain.repurchase import WINDOWS

SCHEMA = "reporting"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)
SESSIONS = add_session_table(Base.metadata)


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
    #: The current score: a revision may replace it within the grace period.
    score: Mapped[int] = mapped_column(SmallInteger)
    responded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: 1 from ``survey.responded``; a revision replaces the row only with a higher one.
    revision: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    recommended: Mapped[bool | None] = mapped_column(Boolean)
    csat: Mapped[int | None] = mapped_column(SmallInteger)
    effort: Mapped[int | None] = mapped_column(SmallInteger)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Who answered, and the survey context's snapshot the answer's segments come from (the
    #: verbatims feed filters by them; see ``services/reporting/domain/verbatims.py``). Null in rows
    #: recorded before reporting kept them, and where the survey had no context.
    customer_id: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(String(200))
    attributes: Mapped[dict[str, str] | None] = mapped_column(JSONB(none_as_null=True))
    #: ``[{"amount_minor", "currency"}]`` as the context carried it.
    spend_12m: Mapped[list[dict[str, object]] | None] = mapped_column(JSONB(none_as_null=True))
    #: The customer's first purchase after the answer, within 365 days (``purchase.recorded.v1``;
    #: see ``services/reporting/domain/repurchase.py``); null while they have not bought again.
    repurchased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # (tenant, responded_at, response_id) is the keyset the feed and the exports page by. The feed
    # shows only answers with a comment, mostly a small share of them: its own partial indexes
    # (the predicate must be the queries' exactly) skip the rest.
    __table_args__ = (
        Index("ix_responses_tenant_responded_at", "tenant_id", "responded_at", "response_id"),
        Index(
            "ix_responses_commented",
            "tenant_id",
            "responded_at",
            "response_id",
            postgresql_where=text("comment <> ''"),
        ),
        Index(
            "ix_responses_commented_touchpoint",
            "tenant_id",
            "touchpoint",
            "responded_at",
            "response_id",
            postgresql_where=text("comment <> ''"),
        ),
        # A purchase finds its customer's answers of the year before it.
        Index(
            "ix_responses_tenant_customer_responded_at",
            "tenant_id",
            "customer_id",
            "responded_at",
            "response_id",
        ),
    )


class RecordedPurchase(Base):
    """A purchase the trigger recorded (``purchase.recorded.v1``), kept so that an answer projected
    after a later purchase of its customer still finds it. Only what the matching needs."""

    __tablename__ = "purchases"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_purchases_tenant_customer_occurred_at", "tenant_id", "customer_id", "occurred_at", "order_id"
        ),
    )


class InvitationStep(Base):
    """A funnel step an invitation reached after it was sent (opened, clicked, reminded, bounced,
    unsubscribed, expired): once per invitation and step, however often it is reported."""

    __tablename__ = "invitation_steps"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    step: Mapped[str] = mapped_column(String(20), primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_invitation_steps_tenant_at", "tenant_id", "at"),)


class InvitationFailure(Base):
    """An invitation the survey gave up on, with the reason code (``survey.failed.v1``)."""

    __tablename__ = "invitation_failures"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63))
    reason: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_invitation_failures_tenant_at", "tenant_id", "at"),)


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
    #: How the case went, as its latest snapshot said (null until an emitter that sends it).
    priority: Mapped[str | None] = mapped_column(String(20))
    assignee_name: Mapped[str | None] = mapped_column(String(200))
    team_name: Mapped[str | None] = mapped_column(String(100))
    contacted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seconds_to_contact: Mapped[float | None] = mapped_column(Float)
    contact_within_sla: Mapped[bool | None] = mapped_column(Boolean)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seconds_to_resolution: Mapped[float | None] = mapped_column(Float)
    root_cause: Mapped[str | None] = mapped_column(String(100))
    recovery_score: Mapped[int | None] = mapped_column(SmallInteger)
    #: The answer the case follows up (``followup.opened``); null until the opening arrives.
    response_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    # Reports select a tenant's cases by when they were opened (when only known to be updated, by
    # that), optionally of one touchpoint: the expression must match the queries' exactly. The case
    # id after it is the export's keyset.
    __table_args__ = (
        Index("ix_cases_tenant_opened", "tenant_id", text("coalesce(opened_at, updated_at)"), "case_id"),
        Index(
            "ix_cases_tenant_touchpoint_opened",
            "tenant_id",
            "touchpoint",
            text("coalesce(opened_at, updated_at)"),
        ),
        Index("ix_cases_tenant_response", "tenant_id", "response_id"),
    )


#: The 0-10 distribution's columns of a cell, ``s0`` to ``s10``.
SCORE_COLUMNS = tuple(f"s{score}" for score in range(11))


class NpsCell(Base):
    """One cell as scoring last announced it (``nps.updated.v1``): the answers of one touchpoint
    in one UTC day, ISO week or calendar month starting at ``start``, for everybody (dimension and
    value ``''``) or one segment, as the 0-10 distribution. Only the highest version is kept."""

    __tablename__ = "nps_cells"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(5), primary_key=True)
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    s0: Mapped[int] = mapped_column(BigInteger)
    s1: Mapped[int] = mapped_column(BigInteger)
    s2: Mapped[int] = mapped_column(BigInteger)
    s3: Mapped[int] = mapped_column(BigInteger)
    s4: Mapped[int] = mapped_column(BigInteger)
    s5: Mapped[int] = mapped_column(BigInteger)
    s6: Mapped[int] = mapped_column(BigInteger)
    s7: Mapped[int] = mapped_column(BigInteger)
    s8: Mapped[int] = mapped_column(BigInteger)
    s9: Mapped[int] = mapped_column(BigInteger)
    s10: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The event's spend at that version: ``[{"currency", "promoters", "passives", "detractors"}]``
    #: in minor units, never converted; None for cells announced before spend was kept.
    spend: Mapped[list[dict[str, object]] | None] = mapped_column(JSONB, nullable=True, default=None)

    # The panels read a tenant's cells of one segment (or everybody) and bucket over a range of
    # starts, for one touchpoint (the primary key) or across them all (the first index). The
    # segments table reads every value of one dimension over a range: the second index, which
    # carries what it sums, so each span is one index-only range whatever the number of values.
    __table_args__ = (
        Index(
            "ix_nps_cells_tenant_segment_bucket_start", "tenant_id", "dimension", "value", "bucket", "start"
        ),
        Index(
            "ix_nps_cells_tenant_dimension_bucket_start",
            "tenant_id",
            "dimension",
            "bucket",
            "start",
            postgresql_include=["touchpoint", "value", *SCORE_COLUMNS],
        ),
    )


class FunnelDay(Base):
    """The funnel's daily rollup: invitations per touchpoint, UTC day and step, counted as the
    projection adds each fact (see :mod:`services.reporting.domain.funnel_days`). Steps: ``sent``,
    those of ``invitation_steps`` (a machine's open only while no person opened the invitation),
    and ``failed_by_reason`` with the reason code; ``reason`` is ``''`` for the others."""

    __tablename__ = "funnel_days"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    step: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str] = mapped_column(String(30), primary_key=True)
    invitations: Mapped[int] = mapped_column(BigInteger)

    # A touchpoint's days are the primary key's prefix; all of a tenant's days, this index.
    __table_args__ = (Index("ix_funnel_days_tenant_day", "tenant_id", "day"),)


class AnswerDay(Base):
    """The daily rollup of answers (see :mod:`services.reporting.domain.rollups`): per touchpoint,
    UTC day of the first answer and current score, the answers and their follow-up questions, kept
    in step with ``responses`` by the projection, in the same transaction. A row whose answers all
    moved on stays, at zero."""

    __tablename__ = "answer_days"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    score: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    answers: Mapped[int] = mapped_column(BigInteger)
    recommended_yes: Mapped[int] = mapped_column(BigInteger)
    recommended_no: Mapped[int] = mapped_column(BigInteger)
    csat_total: Mapped[int] = mapped_column(BigInteger)
    csat_answers: Mapped[int] = mapped_column(BigInteger)
    effort_total: Mapped[int] = mapped_column(BigInteger)
    effort_answers: Mapped[int] = mapped_column(BigInteger)

    # One touchpoint's days are the primary key's prefix; every touchpoint's, this index.
    __table_args__ = (Index("ix_answer_days_tenant_day", "tenant_id", "day"),)


class ReportSettings(Base):
    """A tenant's settings of the report: the churn probabilities revenue at risk is reckoned with.
    No row: the defaults (``services.reporting.domain.revenue``)."""

    __tablename__ = "report_settings"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    detractor_churn: Mapped[float] = mapped_column(Float)
    passive_churn: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RepurchaseDay(Base):
    """The repurchase rate's daily rollup (see :mod:`services.reporting.domain.repurchase`): per
    touchpoint, UTC day of the answer and current score, the answers and how many came back within
    each window the report offers (``came_back_<days>``), kept in step with ``responses`` by the
    projection and the ``purchases`` consumer, in the same transaction as the answer they move."""

    __tablename__ = "repurchase_days"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    score: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    answers: Mapped[int] = mapped_column(BigInteger)
    came_back_7: Mapped[int] = mapped_column(BigInteger)
    came_back_14: Mapped[int] = mapped_column(BigInteger)
    came_back_30: Mapped[int] = mapped_column(BigInteger)
    came_back_60: Mapped[int] = mapped_column(BigInteger)
    came_back_90: Mapped[int] = mapped_column(BigInteger)
    came_back_180: Mapped[int] = mapped_column(BigInteger)
    came_back_365: Mapped[int] = mapped_column(BigInteger)

    # One touchpoint's days are the primary key's prefix; every touchpoint's, this index.
    __table_args__ = (Index("ix_repurchase_days_tenant_day", "tenant_id", "day"),)


#: The came-back counts of a :class:`RepurchaseDay`, one per window, in ``WINDOWS``' order.
CAME_BACK_COLUMNS = tuple(f"came_back_{days}" for days in WINDOWS)


class CaseDay(Base):
    """The follow-up cases' daily rollup (see :mod:`services.reporting.domain.case_days`): per
    touchpoint, UTC day the case counts on (``coalesce(opened_at, updated_at)``), status, breached,
    SLA outcome (``met``, ``missed`` or ``''``), contacted or not, owner and team (``''`` where the
    case has none), the cases, kept in step with ``cases`` by the projection."""

    __tablename__ = "case_days"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    breached: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    sla: Mapped[str] = mapped_column(String(10), primary_key=True)
    contacted: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    team: Mapped[str] = mapped_column(String(100), primary_key=True)
    cases: Mapped[int] = mapped_column(BigInteger)

    # One touchpoint's days are the primary key's prefix; every touchpoint's, this index.
    __table_args__ = (Index("ix_case_days_tenant_day", "tenant_id", "day"),)


class CaseRecoveryDay(Base):
    """The cases with a recovery score, per touchpoint, UTC day, contact speed, root cause (``''``
    when not recorded) and score."""

    __tablename__ = "case_recovery_days"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    contact_speed: Mapped[str] = mapped_column(String(20), primary_key=True)
    root_cause: Mapped[str] = mapped_column(String(100), primary_key=True)
    recovery_score: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cases: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_case_recovery_days_tenant_day", "tenant_id", "day"),)


class CaseMonth(Base):
    """:class:`CaseDay` summed per UTC month (``month``: its first day), kept alongside it."""

    __tablename__ = "case_months"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    breached: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    sla: Mapped[str] = mapped_column(String(10), primary_key=True)
    contacted: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    team: Mapped[str] = mapped_column(String(100), primary_key=True)
    cases: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_case_months_tenant_month", "tenant_id", "month"),)


class CaseRecoveryMonth(Base):
    """:class:`CaseRecoveryDay` summed per UTC month (``month``: its first day)."""

    __tablename__ = "case_recovery_months"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    contact_speed: Mapped[str] = mapped_column(String(20), primary_key=True)
    root_cause: Mapped[str] = mapped_column(String(100), primary_key=True)
    recovery_score: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cases: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_case_recovery_months_tenant_month", "tenant_id", "month"),)


class CaseDurationDay(Base):
    """:class:`CaseDurationMonth` per UTC day of the case's day: the follow-ups' percentiles read
    the whole days of a range's partial months from here (migration 0016). The key leads with the
    day, so every touchpoint's days of a range are one index range."""

    __tablename__ = "case_duration_days"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    metric: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    cases: Mapped[int] = mapped_column(BigInteger)

    # The key's index includes the count: a range is an index-only scan.
    __table_args__ = (
        PrimaryKeyConstraint(
            "tenant_id", "day", "touchpoint", "metric", "bucket", postgresql_include=["cases"]
        ),
    )


class CaseDurationMonth(Base):
    """Per touchpoint, UTC month of the case's day and duration (``contact``, ``resolution``), how
    many cases took a number of seconds in each log bucket (see ``case_days.bucket_of``)."""

    __tablename__ = "case_duration_months"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    touchpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    cases: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_case_duration_months_tenant_month", "tenant_id", "month"),)
