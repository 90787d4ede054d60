"""Touchpoints as versioned configuration, richer customer state, per-touchpoint clocks, source
records (order/ticket dedupe and cancellation), and what each decision used.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.create_table(
        "touchpoints",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    for column in (
        sa.Column("email", sa.String(320)),
        sa.Column("name", sa.String(200)),
        sa.Column("locale", sa.String(35)),
        sa.Column("time_zone", sa.String(64)),
        sa.Column("account_id", sa.String(200)),
        sa.Column("last_responded_at", sa.DateTime(timezone=True)),
        sa.Column("suppressed_at", sa.DateTime(timezone=True)),
        sa.Column("suppression_reason", sa.String(20)),
    ):
        op.add_column("customers", column, schema=SCHEMA)
    op.create_index("ix_customers_email", "customers", ["tenant_id", "email"], schema=SCHEMA)
    op.create_index("ix_customers_account", "customers", ["tenant_id", "account_id"], schema=SCHEMA)
    op.create_table(
        "customer_touchpoints",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("last_invited_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "source_records",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("source_ref", sa.String(220), primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("invitation_id", sa.Uuid),
        sa.Column("send_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_source_records_customer", "source_records", ["tenant_id", "customer_id"], schema=SCHEMA
    )
    op.create_table(
        "quota_usage",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("invited", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.alter_column("decisions", "touchpoint", nullable=True, schema=SCHEMA)
    op.add_column("decisions", sa.Column("touchpoint_version", sa.Integer), schema=SCHEMA)
    op.add_column("decisions", sa.Column("send_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("decisions", sa.Column("detail", sa.String(300)), schema=SCHEMA)
    op.add_column(
        "policies",
        sa.Column("rest_clock", sa.String(20), nullable=False, server_default="invitation"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("policies", "rest_clock", schema=SCHEMA)
    for column in ("detail", "send_at", "touchpoint_version"):
        op.drop_column("decisions", column, schema=SCHEMA)
    op.alter_column("decisions", "touchpoint", nullable=False, schema=SCHEMA)
    for table in ("quota_usage", "source_records", "customer_touchpoints", "touchpoints"):
        op.drop_table(table, schema=SCHEMA)
    op.drop_index("ix_customers_account", "customers", schema=SCHEMA)
    op.drop_index("ix_customers_email", "customers", schema=SCHEMA)
    for column in (
        "suppression_reason",
        "suppressed_at",
        "last_responded_at",
        "account_id",
        "time_zone",
        "locale",
        "name",
        "email",
    ):
        op.drop_column("customers", column, schema=SCHEMA)
