"""The repurchase rate's daily rollup: per tenant, touchpoint, UTC day of the answer and current
score, the answers and how many came back within each window the report offers (7, 14, 30, 60,
90, 180 and 365 days), so that the panel reads days, not answers. Filled from the answers recorded
so far (with the first repurchase each keeps); the projection and the purchases consumer keep it
in step from then on.

Revision ID: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SCHEMA = "reporting"
#: The windows of ``services.reporting.domain.repurchase.WINDOWS`` as they were when this was written.
WINDOWS = (7, 14, 30, 60, 90, 180, 365)


def upgrade() -> None:
    op.create_table(
        "repurchase_days",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("score", sa.SmallInteger, primary_key=True),
        sa.Column("answers", sa.BigInteger, nullable=False),
        *(sa.Column(f"came_back_{days}", sa.BigInteger, nullable=False) for days in WINDOWS),
        schema=SCHEMA,
    )
    op.create_index("ix_repurchase_days_tenant_day", "repurchase_days", ["tenant_id", "day"], schema=SCHEMA)
    came_back = ", ".join(
        f"count(*) FILTER (WHERE repurchased_at <= responded_at + interval '{days * 24} hours')"
        for days in WINDOWS
    )
    op.execute(
        f"INSERT INTO {SCHEMA}.repurchase_days (tenant_id, touchpoint, day, score, answers, "
        f"{', '.join(f'came_back_{days}' for days in WINDOWS)}) "
        "SELECT tenant_id, touchpoint, (responded_at AT TIME ZONE 'UTC')::date, score, count(*), "
        f"{came_back} "
        f"FROM {SCHEMA}.responses GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    op.drop_index("ix_repurchase_days_tenant_day", table_name="repurchase_days", schema=SCHEMA)
    op.drop_table("repurchase_days", schema=SCHEMA)
