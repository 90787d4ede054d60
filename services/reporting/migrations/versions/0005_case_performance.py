"""How each follow-up case went, as ``followup.updated`` now tells it: priority, owner and team by
name, first contact and resolution (when, how long after opening, whether within the SLA), root
cause and the recovery survey's score; and indexes for reports that select cases by opening time.

Cases recorded so far keep nulls until their next update carries the fields.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "reporting"

COLUMNS = (
    ("priority", sa.String(20)),
    ("assignee_name", sa.String(200)),
    ("team_name", sa.String(100)),
    ("contacted_at", sa.DateTime(timezone=True)),
    ("seconds_to_contact", sa.Float),
    ("contact_within_sla", sa.Boolean),
    ("resolved_at", sa.DateTime(timezone=True)),
    ("seconds_to_resolution", sa.Float),
    ("root_cause", sa.String(100)),
    ("recovery_score", sa.SmallInteger),
)


def upgrade() -> None:
    for name, column_type in COLUMNS:
        op.add_column("cases", sa.Column(name, column_type), schema=SCHEMA)
    opened = sa.text("coalesce(opened_at, updated_at)")
    op.create_index("ix_cases_tenant_opened", "cases", ["tenant_id", opened], schema=SCHEMA)
    op.create_index(
        "ix_cases_tenant_touchpoint_opened", "cases", ["tenant_id", "touchpoint", opened], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_cases_tenant_touchpoint_opened", table_name="cases", schema=SCHEMA)
    op.drop_index("ix_cases_tenant_opened", table_name="cases", schema=SCHEMA)
    for name, _ in reversed(COLUMNS):
        op.drop_column("cases", name, schema=SCHEMA)
