"""Outbound webhooks: a tenant's endpoints and their secrets, one durable delivery per endpoint and
event (filled in the transaction that consumed the event), every attempt for the delivery log, and
which one-off case events were told.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.String(500)),
        sa.Column("event_types", sa.ARRAY(sa.String(40)), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100)),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True)),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant_id", "created_at"], schema=SCHEMA
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column(
            "endpoint_id",
            sa.Uuid,
            sa.ForeignKey(f"{SCHEMA}.webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("event_key", sa.String(300), nullable=False),
        sa.Column("customer_id", sa.String(200)),
        sa.Column("ordering_key", sa.String(300), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_deliveries_event"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["endpoint_id", "ordering_key", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_webhook_deliveries_log", "webhook_deliveries", ["endpoint_id", "id"], schema=SCHEMA)
    op.create_index(
        "ix_webhook_deliveries_customer", "webhook_deliveries", ["tenant_id", "customer_id"], schema=SCHEMA
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.BigInteger,
            sa.ForeignKey(f"{SCHEMA}.webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Numeric(10, 3), nullable=False),
        sa.Column("status_code", sa.SmallInteger),
        sa.Column("error", sa.Text),
        sa.Column("response_excerpt", sa.Text),
        schema=SCHEMA,
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"], schema=SCHEMA)
    op.create_table(
        "webhook_case_marks",
        sa.Column("case_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("resolved", sa.Boolean, nullable=False),
        sa.Column("recovered", sa.Boolean, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("webhook_case_marks", "webhook_attempts", "webhook_deliveries", "webhook_endpoints"):
        op.drop_table(table, schema=SCHEMA)
