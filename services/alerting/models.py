"""The alerting service's tables, in schema ``alerting``."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import add_common_tables
from libs.common.sessions import add_session_table

SCHEMA = "alerting"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


COMMON = add_common_tables(Base.metadata)
SESSIONS = add_session_table(Base.metadata)

#: Who a person is to the case desk; agents see their own and their team's cases, the others all.
ROLES = ("agent", "team_lead", "cx_manager", "admin")


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
    #: ``urgent`` (score 0-4) or ``normal`` (5-6): which SLA targets apply.
    priority: Mapped[str] = mapped_column(String(10), server_default="normal")
    assignee_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    team_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: Who owned it and in which team, by name at the time: what reports group breaches by.
    assignee_name: Mapped[str | None] = mapped_column(String(200))
    team_name: Mapped[str | None] = mapped_column(String(100))
    #: The routing rule that placed the case (null: the fallback or nobody), and why, in words.
    routing_rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    routing_reason: Mapped[str | None] = mapped_column(Text)
    resolution_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The SLA steps already taken (reminder, breach, escalations): each is taken once.
    sla_done: Mapped[list[str]] = mapped_column(ARRAY(String(30)), server_default="{}")
    #: When the SLA job next has to look at this case; null when nothing more can happen.
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    root_cause: Mapped[str | None] = mapped_column(String(100))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    reopened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the answer was about, as the survey's context told it.
    order_id: Mapped[str | None] = mapped_column(String(200))
    ticket_id: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    account_id: Mapped[str | None] = mapped_column(String(200))
    account_owner_email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, str]] = mapped_column(JSONB, server_default="{}")
    # Did following up work: the recovery survey, sent a set number of days after resolution.
    recovery_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recovery_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recovery_score: Mapped[int | None] = mapped_column(SmallInteger)
    recovery_answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

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
        CheckConstraint("priority IN ('urgent', 'normal')", name="ck_followup_cases_priority"),
        # The SLA gauges count the unresolved cases, per priority, every check (0005).
        Index(
            "ix_followup_cases_unresolved",
            "priority",
            "due_at",
            "resolution_due_at",
            postgresql_where=text("status <> 'resolved'"),
        ),
        # The SLA job loads only the cases whose next step is due.
        Index(
            "ix_followup_cases_next_check",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
        # The desk's lists: all, mine, my team's, each by due time.
        Index("ix_followup_cases_tenant_due", "tenant_id", "due_at"),
        Index("ix_followup_cases_assignee_due", "tenant_id", "assignee_user_id", "due_at"),
        Index("ix_followup_cases_team_due", "tenant_id", "team_id", "due_at"),
        # The customer's earlier cases, on every case page.
        Index("ix_followup_cases_customer", "tenant_id", "customer_id", "opened_at", "id"),
        # The retention job's scan (services/alerting/repository.py, apply_retention).
        Index(
            "ix_followup_cases_retention_comment",
            "tenant_id",
            "opened_at",
            postgresql_where=text("comment IS NOT NULL"),
        ),
        # Recovery surveys to request.
        Index(
            "ix_followup_cases_recovery_due",
            "recovery_due_at",
            postgresql_where=text("recovery_due_at IS NOT NULL AND recovery_requested_at IS NULL"),
        ),
    )


class CaseEvent(Base):
    """The case's timeline: notes, contacts, assignments, status changes and every step of the SLA
    clock. Rows are only ever added; nothing on a timeline is overwritten."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: opened, routed, assigned, note, contact, contacted, resolved, reopened, reminder, breached,
    #: escalated, resolution_breached, recovery_requested, recovery_answered, score_changed
    kind: Mapped[str] = mapped_column(String(30))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: Who did it, as people read it: a user's name, or ``system``.
    actor: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, object]] = mapped_column(JSONB, server_default="{}")
    #: Makes a step taken by a job idempotent: a retried step finds its row already there.
    dedup_key: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_case_events_case", "case_id", "id"),
        UniqueConstraint("case_id", "dedup_key", name="uq_case_events_dedup"),
    )


class User(Base):
    """A person of the tenant who signs in to the case desk and the report."""

    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: Stored lower-cased: one person, one address, however it is typed.
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        CheckConstraint(f"role IN {ROLES!r}", name="ck_users_role"),
        # Signing in finds the person by address alone; the link then says which tenant.
        Index("ix_users_email", "email"),
    )


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(100))
    lead_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: Incoming webhooks the team's notifications also go to; secrets, never shown whole.
    slack_webhook_url: Mapped[str | None] = mapped_column(Text)
    teams_webhook_url: Mapped[str | None] = mapped_column(Text)
    #: Where round-robin routing continues.
    cursor: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_teams_tenant_name"),)


class TeamMember(Base):
    __tablename__ = "team_members"
    team_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: Round-robin goes through members in the order they joined.
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_team_members_user", "user_id"),)


class MagicLink(Base):
    """A one-time sign-in link: only its SHA-256 is kept, it expires in minutes, and it is used once."""

    __tablename__ = "magic_links"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: Where to go after signing in (a path on this site only), e.g. the case a notification named.
    next_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_magic_links_user", "user_id", "created_at"),)


class RoutingRule(Base):
    """One of a tenant's ordered routing rules: the first that matches a new case places it."""

    __tablename__ = "routing_rules"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    #: As the API takes them (services/alerting/schemas.py): ``when`` and ``then``.
    conditions: Mapped[dict[str, object]] = mapped_column(JSONB)
    target: Mapped[dict[str, object]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("tenant_id", "position", name="uq_routing_rules_position"),)


class DeskSettings(Base):
    """A tenant's case-desk settings (business hours, SLA targets, escalation, root causes, the
    recovery survey, the routing fallback), one validated document; absent means the defaults."""

    __tablename__ = "desk_settings"
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    config: Mapped[dict[str, object]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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
    #: What the answer was about (the survey's context: order or ticket, account, attributes).
    context: Mapped[dict[str, object] | None] = mapped_column(JSONB)

    #: The customer's earlier scores, on every case page.
    __table_args__ = (
        Index("ix_answers_customer", "tenant_id", "customer_id", "responded_at", "response_id"),
        # The retention job's scan (services/alerting/repository.py, apply_retention).
        Index(
            "ix_answers_retention_comment",
            "tenant_id",
            "responded_at",
            postgresql_where=text("comment IS NOT NULL"),
        ),
    )


class Notification(Base):
    """An email to send, written in the same transaction as the change it tells of; the notifier
    loop sends it afterwards, so a slow or absent mail server never holds up a case."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: Null for a digest, which tells of many cases.
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(40))
    #: ``email``, or ``slack`` / ``teams`` (then the recipient is the team's id: the webhook URL is
    #: looked up when sending, so its secret is not copied into the queue).
    channel: Mapped[str] = mapped_column(String(10), server_default="email")
    recipient: Mapped[str] = mapped_column(String(320))
    #: One notification per case, kind, channel and recipient; a digest per person and day.
    dedup_key: Mapped[str] = mapped_column(String(200))
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
        UniqueConstraint("dedup_key", name="uq_notifications_dedup_key"),
        # An erasure finds the emails about a customer's cases (and a tenant's digests) by this.
        Index("ix_notifications_case", "tenant_id", "case_id", "id"),
        Index(
            "ix_notifications_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
        # The retention job's scan: emails sent or given up whose text (it quotes the comment) is kept.
        Index(
            "ix_notifications_retention",
            "tenant_id",
            "created_at",
            postgresql_where=text("body <> '' AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)"),
        ),
    )


class WebhookEndpoint(Base):
    """A tenant's URL that hears of the event types it subscribed to, signed with its secret.

    The secrets are stored as the teams' chat webhook URLs are, in plain text in this service's
    schema: the platform needs them to sign, so a hash would not do, and the database's own
    access control and encryption at rest are what protect them (as they protect the chat URLs)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    #: The secret before the last rotation, which keeps signing until ``previous_secret_until``.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The first failed attempt since the last delivered one; None while the endpoint answers.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant_id", "created_at"),)


class WebhookDelivery(Base):
    """One event to one endpoint: written in the transaction that consumed the event, sent by the
    webhook sender job until the endpoint answers 2xx or the retries run out."""

    __tablename__ = "webhook_deliveries"
    #: Also the order deliveries are made in (per endpoint and ``ordering_key``) and the log's cursor.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    #: ``webhook-id``: the same on every attempt, so a receiver can drop repeats.
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(40))
    #: The source event and type: one delivery per endpoint and event, however often it is consumed.
    event_key: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[str | None] = mapped_column(String(200))
    ordering_key: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)
    #: ``pending``, ``delivered`` or ``failed``.
    state: Mapped[str] = mapped_column(String(10), server_default="pending")
    #: Attempts since it was queued or redelivered (the retry schedule counts these).
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        Index(
            "ix_webhook_deliveries_order",
            "endpoint_id",
            "ordering_key",
            "id",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_deliveries_log", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_customer", "tenant_id", "customer_id", "id"),
    )


class WebhookAttempt(Base):
    """One try of a delivery, for the delivery log."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float] = mapped_column(Numeric(10, 3, asdecimal=False))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(Text)
    #: At most 1 KB of what the endpoint answered.
    response_excerpt: Mapped[str | None] = mapped_column(Text)


class WebhookCaseMarks(Base):
    """Which one-off case events (breached, resolved, recovery measured) the webhooks told of."""

    __tablename__ = "webhook_case_marks"
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    breached: Mapped[bool] = mapped_column(Boolean)
    resolved: Mapped[bool] = mapped_column(Boolean)
    recovered: Mapped[bool] = mapped_column(Boolean)
