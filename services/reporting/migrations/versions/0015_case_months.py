"""The case rollups per month (see ``services/reporting/domain/case_days.py``): ``case_months`` and
``case_recovery_months`` are ``case_days`` and ``case_recovery_days`` summed per UTC month of the
case's day (``month``: its first day), kept by the projection in the cases' transaction beside the
day rows. A range then reads its whole months from one row each, only the whole days of its
partial months from the day rows and its partial first and last day from the cases: a bounded
number of rows for any range. Filled here from the cases recorded so far.

Revision ID: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SCHEMA = "reporting"

_MONTH = "date_trunc('month', (coalesce(opened_at, updated_at) AT TIME ZONE 'UTC'))::date"

#: Each rollup as the cases make it, by the projection's rule (a test checks the two agree).
CASE_MONTHS_OF_CASES = f"""
SELECT tenant_id, coalesce(touchpoint, ''), {_MONTH}, status, breached,
       CASE contact_within_sla WHEN true THEN 'met' WHEN false THEN 'missed' ELSE '' END,
       seconds_to_contact IS NOT NULL, coalesce(assignee_name, ''), coalesce(team_name, ''), count(*)
FROM reporting.cases GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""
CASE_RECOVERY_MONTHS_OF_CASES = f"""
SELECT tenant_id, coalesce(touchpoint, ''), {_MONTH},
       CASE WHEN seconds_to_contact IS NULL THEN 'never contacted'
            WHEN seconds_to_contact <= 86400 THEN 'within 24 h' ELSE 'later' END,
       coalesce(root_cause, ''), recovery_score, count(*)
FROM reporting.cases WHERE recovery_score IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
"""


def _key(name: str, type_: sa.types.TypeEngine[object]) -> sa.Column[object]:
    return sa.Column(name, type_, primary_key=True)


def upgrade() -> None:
    op.create_table(
        "case_months",
        _key("tenant_id", sa.Uuid()),
        _key("touchpoint", sa.String(63)),
        _key("month", sa.Date()),
        _key("status", sa.String(20)),
        _key("breached", sa.Boolean()),
        _key("sla", sa.String(10)),
        _key("contacted", sa.Boolean()),
        _key("owner", sa.String(200)),
        _key("team", sa.String(100)),
        sa.Column("cases", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_case_months_tenant_month", "case_months", ["tenant_id", "month"], schema=SCHEMA)
    op.create_table(
        "case_recovery_months",
        _key("tenant_id", sa.Uuid()),
        _key("touchpoint", sa.String(63)),
        _key("month", sa.Date()),
        _key("contact_speed", sa.String(20)),
        _key("root_cause", sa.String(100)),
        _key("recovery_score", sa.SmallInteger()),
        sa.Column("cases", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_case_recovery_months_tenant_month", "case_recovery_months", ["tenant_id", "month"], schema=SCHEMA
    )
    op.execute(
        "INSERT INTO reporting.case_months (tenant_id, touchpoint, month, status, breached, sla, contacted, "
        "owner, team, cases)" + CASE_MONTHS_OF_CASES
    )
    op.execute(
        "INSERT INTO reporting.case_recovery_months (tenant_id, touchpoint, month, contact_speed, "
        "root_cause, recovery_score, cases)" + CASE_RECOVERY_MONTHS_OF_CASES
    )


def downgrade() -> None:
    for table in ("case_recovery_months", "case_months"):
        op.drop_table(table, schema=SCHEMA)
