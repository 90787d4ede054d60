"""The tenant's display name (emails name the company, not its slug), and events held while
the tenant they belong to is not known yet.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import add_tenant_display_name_and_held_events

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    add_tenant_display_name_and_held_events(SCHEMA)
    # Why an invitation failed for good, as a code from a closed set; last_error keeps the detail.
    op.add_column("invitations", sa.Column("failure_reason", sa.String(30)), schema=SCHEMA)
    # Withdrawn by the trigger after it was sent (a refund, an unsubscribe): no reminder follows.
    op.add_column("invitations", sa.Column("withdrawn_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_index(
        "ix_invitations_failed",
        "invitations",
        ["tenant_id", "created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'failed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_invitations_failed", "invitations", schema=SCHEMA)
    op.drop_column("invitations", "failure_reason", schema=SCHEMA)
    op.drop_column("invitations", "withdrawn_at", schema=SCHEMA)
    op.drop_table("held_events", schema=SCHEMA)
    op.drop_column("tenants", "display_name", schema=SCHEMA)
