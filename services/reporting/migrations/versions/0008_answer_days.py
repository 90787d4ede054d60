"""The daily rollup of answers: per tenant, touchpoint, UTC day of the first answer and current
score, the answers and their follow-up questions, so that a report reads days, not answers. Filled
from the answers recorded so far; the projection keeps it in step from then on.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "reporting"
COUNTS = (
    "answers",
    "recommended_yes",
    "recommended_no",
    "csat_total",
    "csat_answers",
    "effort_total",
    "effort_answers",
)


def upgrade() -> None:
    op.create_table(
        "answer_days",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("score", sa.SmallInteger, primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in COUNTS),
        schema=SCHEMA,
    )
    op.create_index("ix_answer_days_tenant_day", "answer_days", ["tenant_id", "day"], schema=SCHEMA)
    op.execute(
        f"INSERT INTO {SCHEMA}.answer_days (tenant_id, touchpoint, day, score, {', '.join(COUNTS)}) "
        "SELECT tenant_id, touchpoint, (responded_at AT TIME ZONE 'UTC')::date, score, count(*), "
        "count(*) FILTER (WHERE recommended), count(*) FILTER (WHERE NOT recommended), "
        "coalesce(sum(csat), 0), count(csat), coalesce(sum(effort), 0), count(effort) "
        f"FROM {SCHEMA}.responses GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    op.drop_index("ix_answer_days_tenant_day", table_name="answer_days", schema=SCHEMA)
    op.drop_table("answer_days", schema=SCHEMA)
