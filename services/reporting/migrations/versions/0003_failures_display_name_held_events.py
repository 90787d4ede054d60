"""The tenant's display name (emails name the company, not its slug), and events held while
the tenant they belong to is not known yet.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import add_tenant_display_name_and_held_events

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    add_tenant_display_name_and_held_events(SCHEMA)
    # Invitations that failed for good, with the reason code: the funnel shows them.
    op.create_table(
        "invitation_failures",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("invitation_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_invitation_failures_tenant_at", "invitation_failures", ["tenant_id", "at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("invitation_failures", schema=SCHEMA)
    op.drop_table("held_events", schema=SCHEMA)
    op.drop_column("tenants", "display_name", schema=SCHEMA)
