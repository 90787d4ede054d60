"""Reporting's first read model: invitations sent, responses, follow-up cases.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import create_common_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    create_common_tables(SCHEMA)
    op.create_table(
        "invitations_sent",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("invitation_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_invitations_sent_tenant_sent_at", "invitations_sent", ["tenant_id", "sent_at"], schema=SCHEMA
    )
    op.create_table(
        "responses",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("response_id", sa.Uuid, primary_key=True),
        sa.Column("invitation_id", sa.Uuid, nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_responses_tenant_responded_at", "responses", ["tenant_id", "responded_at"], schema=SCHEMA
    )
    op.create_table(
        "cases",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("case_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True)),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "cases",
        "responses",
        "invitations_sent",
        "api_keys",
        "tenants",
        "relay_state",
        "processed_events",
        "outbox",
    ):
        op.drop_table(table, schema=SCHEMA)
