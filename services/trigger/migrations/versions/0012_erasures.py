"""Right to erasure: the receipts (and tombstones) of erased customers, by a keyed hash of the id,
never the id; the shared tables' erasure lookups (outbox by customer, held events by key).

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from libs.common.migrations import add_erasure_lookups

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("customer_key", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("services", JSONB, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_erasures_customer", "erasures", ["tenant_id", "customer_key", "requested_at"], schema=SCHEMA
    )
    add_erasure_lookups(SCHEMA)


def downgrade() -> None:
    op.drop_table("erasures", schema=SCHEMA)
