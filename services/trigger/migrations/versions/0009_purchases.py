"""The purchases ledger: what each customer spent per order, in the minor units of its own currency,
for the 12-month spend snapshot on survey requests; and the index the decisions export reads by.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.create_table(
        "purchases",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id"),
        sa.CheckConstraint("amount_minor >= 0", name="ck_purchases_amount"),
        schema=SCHEMA,
    )
    # The spend of a batch's customers over 12 months, read from the index alone.
    op.create_index(
        "ix_purchases_customer",
        "purchases",
        ["tenant_id", "customer_id", "occurred_at"],
        postgresql_include=["currency", "amount_minor"],
        schema=SCHEMA,
    )
    # The decisions export's keyset order. Not CONCURRENTLY: the whole history runs in one transaction
    # under the migration lock. On a very large decisions table, build it by hand beforehand
    # (CONCURRENTLY, the same name): this then leaves it as it is.
    op.create_index(
        "ix_decisions_tenant_time",
        "decisions",
        ["tenant_id", "decided_at", "id"],
        schema=SCHEMA,
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_tenant_time", table_name="decisions", schema=SCHEMA)
    op.drop_index("ix_purchases_customer", table_name="purchases", schema=SCHEMA)
    op.drop_table("purchases", schema=SCHEMA)
