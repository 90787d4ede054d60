"""Answers carry their current version (score, comment, follow-up answers); invitations their
funnel steps after sending.

Responses recorded so far are revision 1, as ``survey.responded`` announced them.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    op.add_column(
        "responses", sa.Column("revision", sa.Integer, nullable=False, server_default="1"), schema=SCHEMA
    )
    op.alter_column("responses", "revision", server_default=None, schema=SCHEMA)
    op.add_column("responses", sa.Column("comment", sa.Text), schema=SCHEMA)
    op.add_column("responses", sa.Column("recommended", sa.Boolean), schema=SCHEMA)
    op.add_column("responses", sa.Column("csat", sa.SmallInteger), schema=SCHEMA)
    op.add_column("responses", sa.Column("effort", sa.SmallInteger), schema=SCHEMA)
    op.add_column("responses", sa.Column("updated_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_table(
        "invitation_steps",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("invitation_id", sa.Uuid, primary_key=True),
        sa.Column("step", sa.String(20), primary_key=True),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_invitation_steps_tenant_at", "invitation_steps", ["tenant_id", "at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("invitation_steps", schema=SCHEMA)
    for column in ("updated_at", "effort", "csat", "recommended", "comment", "revision"):
        op.drop_column("responses", column, schema=SCHEMA)
