"""Issue 4: languages, follow-up answers, reminders, the funnel, unsubscribes and bounces, and
per-tenant survey settings.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "survey"
_STAMPS = (
    "opened_at",
    "clicked_at",
    "reminder_due_at",
    "reminded_at",
    "unsubscribed_at",
    "bounced_at",
    "expiry_recorded_at",
)


def upgrade() -> None:
    op.add_column("invitations", sa.Column("language", sa.String(8)), schema=SCHEMA)
    for name in _STAMPS:
        op.add_column("invitations", sa.Column(name, sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_index("ix_invitations_email", "invitations", [sa.text("lower(email)")], schema=SCHEMA)
    op.create_index(
        "ix_invitations_reminder_due",
        "invitations",
        ["reminder_due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("reminded_at IS NULL AND responded_at IS NULL"),
    )
    op.create_index(
        "ix_invitations_expiring",
        "invitations",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'sent' AND expiry_recorded_at IS NULL"),
    )
    op.add_column("responses", sa.Column("recommended", sa.Boolean()), schema=SCHEMA)
    op.add_column("responses", sa.Column("csat", sa.SmallInteger()), schema=SCHEMA)
    op.add_column("responses", sa.Column("effort", sa.SmallInteger()), schema=SCHEMA)
    revision_column = sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False)
    op.add_column("responses", revision_column, schema=SCHEMA)
    op.add_column("responses", sa.Column("updated_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_check_constraint("ck_responses_csat", "responses", "csat BETWEEN 1 AND 5", schema=SCHEMA)
    op.create_check_constraint("ck_responses_effort", "responses", "effort BETWEEN 1 AND 7", schema=SCHEMA)
    op.create_table(
        "suppressions",
        sa.Column("tenant_id", sa.Uuid(), primary_key=True),
        sa.Column("email_lower", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.Uuid(), primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("tenant_settings", schema=SCHEMA)
    op.drop_table("suppressions", schema=SCHEMA)
    op.drop_constraint("ck_responses_effort", "responses", schema=SCHEMA)
    op.drop_constraint("ck_responses_csat", "responses", schema=SCHEMA)
    for name in ("updated_at", "revision", "effort", "csat", "recommended"):
        op.drop_column("responses", name, schema=SCHEMA)
    op.drop_index("ix_invitations_expiring", "invitations", schema=SCHEMA)
    op.drop_index("ix_invitations_reminder_due", "invitations", schema=SCHEMA)
    op.drop_index("ix_invitations_email", "invitations", schema=SCHEMA)
    for name in (*_STAMPS, "language"):
        op.drop_column("invitations", name, schema=SCHEMA)
