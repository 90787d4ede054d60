"""The repurchase rate: each answer keeps its customer's first purchase after it (within 365 days),
and the purchases the trigger announces are kept, so that an answer that arrives after a later
purchase still finds it. Indexes for both lookups: a purchase's answers, an answer's purchases.

Answers recorded so far keep a null: nobody is known to have bought again until purchases arrive.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    op.add_column("responses", sa.Column("repurchased_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_index(
        "ix_responses_tenant_customer_responded_at",
        "responses",
        ["tenant_id", "customer_id", "responded_at"],
        schema=SCHEMA,
    )
    op.create_table(
        "purchases",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("order_id", sa.String(200), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_purchases_tenant_customer_occurred_at",
        "purchases",
        ["tenant_id", "customer_id", "occurred_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_purchases_tenant_customer_occurred_at", table_name="purchases", schema=SCHEMA)
    op.drop_table("purchases", schema=SCHEMA)
    op.drop_index("ix_responses_tenant_customer_responded_at", table_name="responses", schema=SCHEMA)
    op.drop_column("responses", "repurchased_at", schema=SCHEMA)
