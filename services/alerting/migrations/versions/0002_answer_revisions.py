"""Answers can be revised: keep every answer's current version; cases show the follow-up answers
and say why they were resolved.

A revision (``survey.response_updated``) carries no email address, so a case opened from one
before its ``survey.responded`` arrived has none yet. Answers already behind a case are copied in
as revision 1, so their revisions find them.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("response_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("invitation_id", sa.Uuid, nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("customer_email", sa.String(320)),
        sa.Column("customer_name", sa.String(200)),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("recommended", sa.Boolean),
        sa.Column("csat", sa.SmallInteger),
        sa.Column("effort", sa.SmallInteger),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.alter_column("followup_cases", "customer_email", nullable=True, schema=SCHEMA)
    op.add_column("followup_cases", sa.Column("recommended", sa.Boolean), schema=SCHEMA)
    op.add_column("followup_cases", sa.Column("csat", sa.SmallInteger), schema=SCHEMA)
    op.add_column("followup_cases", sa.Column("effort", sa.SmallInteger), schema=SCHEMA)
    op.add_column("followup_cases", sa.Column("resolution", sa.String(20)), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.followup_cases SET resolution = 'handled' WHERE status = 'resolved'")
    op.execute(
        f"INSERT INTO {SCHEMA}.answers (response_id, tenant_id, invitation_id, customer_id, "
        "customer_email, customer_name, touchpoint, revision, score, comment, responded_at, updated_at) "
        "SELECT response_id, tenant_id, invitation_id, customer_id, customer_email, customer_name, "
        f"touchpoint, 1, score, comment, opened_at, updated_at FROM {SCHEMA}.followup_cases"
    )


def downgrade() -> None:
    op.drop_column("followup_cases", "resolution", schema=SCHEMA)
    op.drop_column("followup_cases", "effort", schema=SCHEMA)
    op.drop_column("followup_cases", "csat", schema=SCHEMA)
    op.drop_column("followup_cases", "recommended", schema=SCHEMA)
    op.execute(f"DELETE FROM {SCHEMA}.followup_cases WHERE customer_email IS NULL")
    op.alter_column("followup_cases", "customer_email", nullable=False, schema=SCHEMA)
    op.drop_table("answers", schema=SCHEMA)
