"""BigCommerce intake: the store each receiver fetches orders from (its API token), and the durable
queue of thin deliveries whose order is still to be fetched, with what came of each.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = "trigger"
_BEFORE = (
    "platform IN ('shopify', 'woocommerce', 'zendesk', 'freshdesk', 'generic', "
    "'stripe', 'intercom', 'zammad', 'helpscout')"
)
_AFTER = (
    "platform IN ('shopify', 'woocommerce', 'zendesk', 'freshdesk', 'generic', "
    "'stripe', 'intercom', 'zammad', 'helpscout', 'bigcommerce')"
)


def upgrade() -> None:
    op.drop_constraint("ck_webhook_endpoints_platform", "webhook_endpoints", schema=SCHEMA, type_="check")
    op.create_check_constraint("ck_webhook_endpoints_platform", "webhook_endpoints", _AFTER, schema=SCHEMA)
    op.create_table(
        "bigcommerce_stores",
        sa.Column("endpoint_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("store_hash", sa.String(64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "order_fetches",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(20), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(63), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(300)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "state IN ('queued', 'decided', 'ignored', 'failed')", name="ck_order_fetches_state"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ux_order_fetches_delivery",
        "order_fetches",
        ["tenant_id", "platform", "delivery_id"],
        unique=True,
        schema=SCHEMA,
    )
    # The claim reads only queued rows, oldest due first.
    op.create_index(
        "ix_order_fetches_due",
        "order_fetches",
        ["due_at"],
        postgresql_where=sa.text("state = 'queued'"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_order_fetches_endpoint",
        "order_fetches",
        ["tenant_id", "endpoint_id", "received_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("order_fetches", schema=SCHEMA)
    op.drop_table("bigcommerce_stores", schema=SCHEMA)
    op.execute(f"DELETE FROM {SCHEMA}.webhook_endpoints WHERE platform = 'bigcommerce'")
    op.drop_constraint("ck_webhook_endpoints_platform", "webhook_endpoints", schema=SCHEMA, type_="check")
    op.create_check_constraint("ck_webhook_endpoints_platform", "webhook_endpoints", _BEFORE, schema=SCHEMA)
