"""The survey's first tables: invitations and responses.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import create_common_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    create_common_tables(SCHEMA)
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("locale", sa.String(35)),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("trigger_event_id", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("sending_started_at", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("responded_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'sending', 'sent', 'failed', 'responded')", name="ck_invitations_status"
        ),
        schema=SCHEMA,
    )
    op.create_index("ux_invitations_token_hash", "invitations", ["token_hash"], unique=True, schema=SCHEMA)
    op.create_index(
        "ix_invitations_customer", "invitations", ["tenant_id", "customer_id", "created_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_invitations_due",
        "invitations",
        ["send_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_invitations_sending",
        "invitations",
        ["sending_started_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_table(
        "responses",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("invitation_id", sa.Uuid, nullable=False),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 0 AND 10", name="ck_responses_score"),
        schema=SCHEMA,
    )
    op.create_index("ux_responses_invitation", "responses", ["invitation_id"], unique=True, schema=SCHEMA)
    op.create_index("ix_responses_tenant", "responses", ["tenant_id", "responded_at"], schema=SCHEMA)


def downgrade() -> None:
    for table in (
        "responses",
        "invitations",
        "api_keys",
        "tenants",
        "relay_state",
        "processed_events",
        "outbox",
    ):
        op.drop_table(table, schema=SCHEMA)
