"""Account cohorts: which accounts were drawn for relationship surveys, in which round and period.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.create_table(
        "cohort_picks",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(20), nullable=False),
        sa.Column("picked_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_cohort_picks_period", "cohort_picks", ["tenant_id", "touchpoint", "period"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("cohort_picks", schema=SCHEMA)
