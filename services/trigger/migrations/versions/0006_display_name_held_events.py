"""The tenant's display name (emails name the company, not its slug), and events held while
the tenant they belong to is not known yet.

Revision ID: 0006
"""

from alembic import op

from libs.common.migrations import add_tenant_display_name_and_held_events

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    add_tenant_display_name_and_held_events(SCHEMA)


def downgrade() -> None:
    op.drop_table("held_events", schema=SCHEMA)
    op.drop_column("tenants", "display_name", schema=SCHEMA)
