"""Right to erasure: the answers found by customer, the tombstones of erased customers (a keyed hash,
never the id), and the shared tables' erasure lookups (outbox by customer, held events by key).

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import add_erasure_lookups

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    op.create_index("ix_responses_customer", "responses", ["tenant_id", "customer_id"], schema=SCHEMA)
    op.create_table(
        "erased_customers",
        sa.Column("erasure_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("customer_key", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_erased_customers_key",
        "erased_customers",
        ["tenant_id", "customer_key", "requested_at"],
        schema=SCHEMA,
    )
    add_erasure_lookups(SCHEMA)


def downgrade() -> None:
    op.drop_table("erased_customers", schema=SCHEMA)
    op.drop_index("ix_responses_customer", table_name="responses", schema=SCHEMA)
