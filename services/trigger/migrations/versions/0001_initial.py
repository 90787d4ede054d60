"""The trigger's first tables: customers' rest-period clocks, decisions, policies.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import create_common_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    create_common_tables(SCHEMA)
    op.create_table(
        "customers",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("last_invited_at", sa.DateTime(timezone=True)),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40)),
        sa.Column("invitation_id", sa.Uuid),
        sa.Column("rest_until", sa.DateTime(timezone=True)),
        sa.Column("rest_period_days", sa.Integer, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_decisions_customer", "decisions", ["tenant_id", "customer_id", "decided_at"], schema=SCHEMA
    )
    op.create_index("ux_decisions_event", "decisions", ["tenant_id", "event_id"], unique=True, schema=SCHEMA)
    op.create_table(
        "policies",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("rest_period_days", sa.Integer, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "policies",
        "decisions",
        "customers",
        "api_keys",
        "tenants",
        "relay_state",
        "processed_events",
        "outbox",
    ):
        op.drop_table(table, schema=SCHEMA)
