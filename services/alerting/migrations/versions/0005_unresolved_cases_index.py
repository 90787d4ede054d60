"""The SLA gauges (open, due within the hour, breached now, per priority) count the unresolved
cases every SLA check; a partial index over them keeps that one query small however many resolved
cases a tenant has kept.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX IF NOT EXISTS ix_followup_cases_unresolved ON {SCHEMA}.followup_cases "
        "(priority, due_at, resolution_due_at) WHERE status <> 'resolved'"
    )


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {SCHEMA}.ix_followup_cases_unresolved")
