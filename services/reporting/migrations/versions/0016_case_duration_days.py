"""The duration histogram per day (see ``services/reporting/domain/case_days.py``):
``case_duration_days`` is ``case_duration_months`` per UTC day of the case's day, kept by the
projection in the cases' transaction beside the month rows. The follow-ups' percentiles then read a
range's whole months from the month rows, only the whole days of its partial months from the day
rows and its partial first and last day from the cases, as the counts do (``plan_case_spans``).
At 10 M answers a 30-day range's partial months were ~87,000 cases bucketed per request, now
~26,000 day rows read from the index alone: its key leads with the day (every touchpoint's days of
a range are one index range) and it includes the count. The follow-ups' percentiles statement over the
last 365 days went from 23 to 8 ms (EXPLAIN ANALYZE). Filled here from the cases recorded so far.

Revision ID: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SCHEMA = "reporting"

#: ``case_days.bucket_of`` in SQL, as migration 0012 has it.
_BUCKET = "CASE WHEN {0} <= 0 THEN -1000000 ELSE floor(ln({0}) / ln(1.02))::int END"
_DAY = "(coalesce(opened_at, updated_at) AT TIME ZONE 'UTC')::date"

#: The key; the index includes ``cases``, so a range is read from the index alone.
KEY = ("tenant_id", "day", "touchpoint", "metric", "bucket")

#: The rollup as the cases make it, by the projection's rule (a test checks the two agree).
CASE_DURATION_DAYS_OF_CASES = f"""
SELECT tenant_id, {_DAY}, coalesce(touchpoint, ''), metric, bucket, count(*)
FROM (
    SELECT tenant_id, touchpoint, opened_at, updated_at, 'contact' AS metric,
           {_BUCKET.format("seconds_to_contact")} AS bucket
    FROM reporting.cases WHERE seconds_to_contact IS NOT NULL
    UNION ALL
    SELECT tenant_id, touchpoint, opened_at, updated_at, 'resolution',
           {_BUCKET.format("seconds_to_resolution")}
    FROM reporting.cases WHERE seconds_to_resolution IS NOT NULL
) AS durations
GROUP BY 1, 2, 3, 4, 5
"""


def upgrade() -> None:
    op.create_table(
        "case_duration_days",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("metric", sa.String(20), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("cases", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*KEY, postgresql_include=["cases"]),
        schema=SCHEMA,
    )
    op.execute(
        "INSERT INTO reporting.case_duration_days (tenant_id, day, touchpoint, metric, bucket, cases)"
        + CASE_DURATION_DAYS_OF_CASES
    )


def downgrade() -> None:
    op.drop_table("case_duration_days", schema=SCHEMA)
