"""The funnel's daily rollup: invitations per tenant, touchpoint, UTC day and step (sent, each
funnel step, a machine's open only while no person opened the invitation, and the invitations
given up by reason), kept by the projection as facts arrive, so the summary reads days instead of
scanning the facts. Filled here from the facts recorded so far.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "reporting"

#: The rollup as the facts make it, by the projection's rule (a test checks the two agree).
ROLLUP_OF_FACTS = """
SELECT tenant_id, touchpoint, (sent_at AT TIME ZONE 'UTC')::date, 'sent', '', count(*)
FROM reporting.invitations_sent GROUP BY 1, 2, 3
UNION ALL
SELECT s.tenant_id, s.touchpoint, (s.at AT TIME ZONE 'UTC')::date, s.step, '', count(*)
FROM reporting.invitation_steps AS s
WHERE NOT (s.step = 'machine_opened' AND EXISTS (
    SELECT 1 FROM reporting.invitation_steps AS person
    WHERE person.tenant_id = s.tenant_id AND person.invitation_id = s.invitation_id
      AND person.step = 'opened'))
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT tenant_id, touchpoint, (at AT TIME ZONE 'UTC')::date, 'failed_by_reason', reason, count(*)
FROM reporting.invitation_failures GROUP BY 1, 2, 3, 5
"""
BACKFILL = (
    "INSERT INTO reporting.funnel_days (tenant_id, touchpoint, day, step, reason, invitations)"
    + ROLLUP_OF_FACTS
)


def upgrade() -> None:
    op.create_table(
        "funnel_days",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("step", sa.String(20), primary_key=True),
        sa.Column("reason", sa.String(30), primary_key=True),
        sa.Column("invitations", sa.BigInteger, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_funnel_days_tenant_day", "funnel_days", ["tenant_id", "day"], schema=SCHEMA)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("funnel_days", schema=SCHEMA)
