"""The alerting service's first tables: follow-up cases and the notifications queue.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import create_common_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    create_common_tables(SCHEMA)
    op.create_table(
        "followup_cases",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("response_id", sa.Uuid, nullable=False),
        sa.Column("invitation_id", sa.Uuid, nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=False),
        sa.Column("customer_name", sa.String(200)),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("owner_email", sa.String(320)),
        sa.Column("note", sa.Text),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contacted_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("breached_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("response_id", name="uq_followup_cases_response_id"),
        sa.CheckConstraint("status IN ('open', 'contacted', 'resolved')", name="ck_followup_cases_status"),
        sa.CheckConstraint("score BETWEEN 0 AND 10", name="ck_followup_cases_score"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_followup_cases_tenant_opened", "followup_cases", ["tenant_id", "opened_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_followup_cases_breachable",
        "followup_cases",
        ["due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open' AND breached_at IS NULL"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("case_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("case_id", "kind", name="uq_notifications_case_kind"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
    )


def downgrade() -> None:
    for table in (
        "notifications",
        "followup_cases",
        "api_keys",
        "tenants",
        "relay_state",
        "processed_events",
        "outbox",
    ):
        op.drop_table(table, schema=SCHEMA)
