"""Scoring's first table: running answer counts per tenant and touchpoint.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import create_common_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "scoring"


def upgrade() -> None:
    create_common_tables(SCHEMA)
    op.create_table(
        "tallies",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("promoters", sa.BigInteger, nullable=False),
        sa.Column("passives", sa.BigInteger, nullable=False),
        sa.Column("detractors", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("tallies", "api_keys", "tenants", "relay_state", "processed_events", "outbox"):
        op.drop_table(table, schema=SCHEMA)
