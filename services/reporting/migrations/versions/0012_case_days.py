"""The follow-up cases' rollups (see ``services/reporting/domain/case_days.py``): per tenant,
touchpoint and UTC day the case counts on (``coalesce(opened_at, updated_at)``), the cases by state,
SLA outcome, owner and team (``case_days``), those with a recovery score by contact speed, root cause
and score (``case_recovery_days``), and per month a log-bucketed histogram of the times to first
contact and to resolution (``case_duration_months``). The projection keeps them in the cases'
transaction, so the summary and the follow-ups panel read days, not cases. Filled here from the
cases recorded so far.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = "reporting"

#: ``case_days.bucket_of`` in SQL: the same bucket for the same seconds.
_BUCKET = "CASE WHEN {0} <= 0 THEN -1000000 ELSE floor(ln({0}) / ln(1.02))::int END"
_DAY = "(coalesce(opened_at, updated_at) AT TIME ZONE 'UTC')::date"

#: Each rollup as the cases make it, by the projection's rule (a test checks the two agree).
CASE_DAYS_OF_CASES = f"""
SELECT tenant_id, coalesce(touchpoint, ''), {_DAY}, status, breached,
       CASE contact_within_sla WHEN true THEN 'met' WHEN false THEN 'missed' ELSE '' END,
       seconds_to_contact IS NOT NULL, coalesce(assignee_name, ''), coalesce(team_name, ''), count(*)
FROM reporting.cases GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""
CASE_RECOVERY_DAYS_OF_CASES = f"""
SELECT tenant_id, coalesce(touchpoint, ''), {_DAY},
       CASE WHEN seconds_to_contact IS NULL THEN 'never contacted'
            WHEN seconds_to_contact <= 86400 THEN 'within 24 h' ELSE 'later' END,
       coalesce(root_cause, ''), recovery_score, count(*)
FROM reporting.cases WHERE recovery_score IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
"""
CASE_DURATION_MONTHS_OF_CASES = f"""
SELECT tenant_id, coalesce(touchpoint, ''), date_trunc('month', {_DAY}::timestamp)::date, metric, bucket,
       count(*)
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


def _key(name: str, type_: sa.types.TypeEngine[object]) -> sa.Column[object]:
    return sa.Column(name, type_, primary_key=True)


def upgrade() -> None:
    op.create_table(
        "case_days",
        _key("tenant_id", sa.Uuid()),
        _key("touchpoint", sa.String(63)),
        _key("day", sa.Date()),
        _key("status", sa.String(20)),
        _key("breached", sa.Boolean()),
        _key("sla", sa.String(10)),
        _key("contacted", sa.Boolean()),
        _key("owner", sa.String(200)),
        _key("team", sa.String(100)),
        sa.Column("cases", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_case_days_tenant_day", "case_days", ["tenant_id", "day"], schema=SCHEMA)
    op.create_table(
        "case_recovery_days",
        _key("tenant_id", sa.Uuid()),
        _key("touchpoint", sa.String(63)),
        _key("day", sa.Date()),
        _key("contact_speed", sa.String(20)),
        _key("root_cause", sa.String(100)),
        _key("recovery_score", sa.SmallInteger()),
        sa.Column("cases", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_case_recovery_days_tenant_day", "case_recovery_days", ["tenant_id", "day"], schema=SCHEMA
    )
    op.create_table(
        "case_duration_months",
        _key("tenant_id", sa.Uuid()),
        _key("touchpoint", sa.String(63)),
        _key("month", sa.Date()),
        _key("metric", sa.String(20)),
        _key("bucket", sa.Integer()),
        sa.Column("cases", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_case_duration_months_tenant_month", "case_duration_months", ["tenant_id", "month"], schema=SCHEMA
    )
    op.execute(
        "INSERT INTO reporting.case_days (tenant_id, touchpoint, day, status, breached, sla, contacted, "
        "owner, team, cases)" + CASE_DAYS_OF_CASES
    )
    op.execute(
        "INSERT INTO reporting.case_recovery_days (tenant_id, touchpoint, day, contact_speed, root_cause, "
        "recovery_score, cases)" + CASE_RECOVERY_DAYS_OF_CASES
    )
    op.execute(
        "INSERT INTO reporting.case_duration_months (tenant_id, touchpoint, month, metric, bucket, cases)"
        + CASE_DURATION_MONTHS_OF_CASES
    )


def downgrade() -> None:
    for table in ("case_duration_months", "case_recovery_days", "case_days"):
        op.drop_table(table, schema=SCHEMA)
