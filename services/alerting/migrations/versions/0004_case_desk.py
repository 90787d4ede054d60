"""The case desk: people and teams who sign in, routing rules, the tenant's desk settings, a
timeline on every case, a business-hours SLA clock, and what the case was about.

Cases opened before this revision keep their due time; their clock's next check is their due time
while they are open, so the SLA job takes them on. Notifications gain a channel and one
deduplication key in place of the (case, kind) pair, so several people (the chain of escalation)
and a daily digest can each be told once.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from libs.common.migrations import create_session_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "alerting"

_CASE_COLUMNS = [
    sa.Column("priority", sa.String(10), nullable=False, server_default="normal"),
    sa.Column("assignee_user_id", sa.Uuid),
    sa.Column("team_id", sa.Uuid),
    sa.Column("assignee_name", sa.String(200)),
    sa.Column("team_name", sa.String(100)),
    sa.Column("routing_rule_id", sa.Uuid),
    sa.Column("routing_reason", sa.Text),
    sa.Column("resolution_due_at", sa.DateTime(timezone=True)),
    sa.Column("resolution_breached_at", sa.DateTime(timezone=True)),
    sa.Column("sla_done", sa.ARRAY(sa.String(30)), nullable=False, server_default="{}"),
    sa.Column("next_check_at", sa.DateTime(timezone=True)),
    sa.Column("root_cause", sa.String(100)),
    sa.Column("resolution_note", sa.Text),
    sa.Column("reopened_at", sa.DateTime(timezone=True)),
    sa.Column("order_id", sa.String(200)),
    sa.Column("ticket_id", sa.String(200)),
    sa.Column("amount", sa.Numeric(18, 4)),
    sa.Column("currency", sa.String(3)),
    sa.Column("account_id", sa.String(200)),
    sa.Column("account_owner_email", sa.String(320)),
    sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
    sa.Column("recovery_due_at", sa.DateTime(timezone=True)),
    sa.Column("recovery_requested_at", sa.DateTime(timezone=True)),
    sa.Column("recovery_score", sa.SmallInteger),
    sa.Column("recovery_answered_at", sa.DateTime(timezone=True)),
]


def upgrade() -> None:
    _cases()
    _notifications()
    op.add_column("answers", sa.Column("context", JSONB), schema=SCHEMA)
    op.create_index(
        "ix_answers_customer", "answers", ["tenant_id", "customer_id", "responded_at"], schema=SCHEMA
    )
    _timeline()
    _people()
    _routing_and_settings()
    create_session_table(SCHEMA)


def _cases() -> None:
    for column in _CASE_COLUMNS:
        op.add_column("followup_cases", column, schema=SCHEMA)
    op.create_check_constraint(
        "ck_followup_cases_priority", "followup_cases", "priority IN ('urgent', 'normal')", schema=SCHEMA
    )
    op.execute(
        f"UPDATE {SCHEMA}.followup_cases "
        "SET priority = CASE WHEN score <= 4 THEN 'urgent' ELSE 'normal' END, "
        "next_check_at = CASE WHEN status = 'open' AND breached_at IS NULL THEN due_at END"
    )
    op.create_index(
        "ix_followup_cases_next_check",
        "followup_cases",
        ["next_check_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.create_index("ix_followup_cases_tenant_due", "followup_cases", ["tenant_id", "due_at"], schema=SCHEMA)
    op.create_index(
        "ix_followup_cases_assignee_due",
        "followup_cases",
        ["tenant_id", "assignee_user_id", "due_at"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_followup_cases_team_due", "followup_cases", ["tenant_id", "team_id", "due_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_followup_cases_customer", "followup_cases", ["tenant_id", "customer_id"], schema=SCHEMA
    )
    op.create_index(
        "ix_followup_cases_recovery_due",
        "followup_cases",
        ["recovery_due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("recovery_due_at IS NOT NULL AND recovery_requested_at IS NULL"),
    )


def _notifications() -> None:
    op.alter_column("notifications", "kind", type_=sa.String(40), schema=SCHEMA)
    op.alter_column("notifications", "case_id", nullable=True, schema=SCHEMA)
    op.add_column(
        "notifications",
        sa.Column("channel", sa.String(10), nullable=False, server_default="email"),
        schema=SCHEMA,
    )
    op.add_column("notifications", sa.Column("dedup_key", sa.String(200)), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.notifications "
        "SET dedup_key = case_id::text || ':' || kind || ':email:' || recipient"
    )
    op.alter_column("notifications", "dedup_key", nullable=False, schema=SCHEMA)
    op.drop_constraint("uq_notifications_case_kind", "notifications", schema=SCHEMA)
    op.create_unique_constraint("uq_notifications_dedup_key", "notifications", ["dedup_key"], schema=SCHEMA)


def _timeline() -> None:
    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("case_id", sa.Uuid, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("actor_user_id", sa.Uuid),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("data", JSONB, nullable=False, server_default="{}"),
        sa.Column("dedup_key", sa.String(100)),
        sa.UniqueConstraint("case_id", "dedup_key", name="uq_case_events_dedup"),
        schema=SCHEMA,
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id", "id"], schema=SCHEMA)
    # Cases opened before the timeline existed start theirs with their opening.
    op.execute(
        f"INSERT INTO {SCHEMA}.case_events (tenant_id, case_id, at, kind, actor, dedup_key) "
        f"SELECT tenant_id, id, opened_at, 'opened', 'system', 'opened' FROM {SCHEMA}.followup_cases"
    )


def _people() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        sa.CheckConstraint("role IN ('agent', 'team_lead', 'cx_manager', 'admin')", name="ck_users_role"),
        schema=SCHEMA,
    )
    op.create_index("ix_users_email", "users", ["email"], schema=SCHEMA)
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("lead_user_id", sa.Uuid),
        sa.Column("slack_webhook_url", sa.Text),
        sa.Column("teams_webhook_url", sa.Text),
        sa.Column("cursor", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_teams_tenant_name"),
        schema=SCHEMA,
    )
    op.create_table(
        "team_members",
        sa.Column(
            "team_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.teams.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_team_members_user", "team_members", ["user_id"], schema=SCHEMA)
    op.create_table(
        "magic_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("next_path", sa.String(500)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index("ix_magic_links_user", "magic_links", ["user_id", "created_at"], schema=SCHEMA)


def _routing_and_settings() -> None:
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("conditions", JSONB, nullable=False),
        sa.Column("target", JSONB, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "position", name="uq_routing_rules_position"),
        schema=SCHEMA,
    )
    op.create_table(
        "desk_settings",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("web_sessions", "desk_settings", "routing_rules", "magic_links", "team_members", "teams"):
        op.drop_table(table, schema=SCHEMA)
    op.drop_table("users", schema=SCHEMA)
    op.drop_table("case_events", schema=SCHEMA)
    op.drop_index("ix_answers_customer", "answers", schema=SCHEMA)
    op.drop_column("answers", "context", schema=SCHEMA)
    op.drop_constraint("uq_notifications_dedup_key", "notifications", schema=SCHEMA)
    # Keep one notification per (case, kind): the others were escalations to further people.
    op.execute(
        f"DELETE FROM {SCHEMA}.notifications n USING {SCHEMA}.notifications m "
        "WHERE n.case_id = m.case_id AND n.kind = m.kind AND n.id > m.id"
    )
    op.execute(f"DELETE FROM {SCHEMA}.notifications WHERE case_id IS NULL OR length(kind) > 20")
    op.create_unique_constraint(
        "uq_notifications_case_kind", "notifications", ["case_id", "kind"], schema=SCHEMA
    )
    op.drop_column("notifications", "dedup_key", schema=SCHEMA)
    op.drop_column("notifications", "channel", schema=SCHEMA)
    op.alter_column("notifications", "case_id", nullable=False, schema=SCHEMA)
    op.alter_column("notifications", "kind", type_=sa.String(20), schema=SCHEMA)
    op.drop_constraint("ck_followup_cases_priority", "followup_cases", schema=SCHEMA)
    for column in reversed(_CASE_COLUMNS):
        op.drop_column("followup_cases", column.name, schema=SCHEMA)
