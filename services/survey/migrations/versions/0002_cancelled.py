"""Invitations can be cancelled before they are sent (an order refunded, a customer unsubscribed).

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    op.drop_constraint("ck_invitations_status", "invitations", schema=SCHEMA)
    op.create_check_constraint(
        "ck_invitations_status",
        "invitations",
        "status IN ('scheduled', 'sending', 'sent', 'failed', 'responded', 'cancelled')",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint("ck_invitations_status", "invitations", schema=SCHEMA)
    op.create_check_constraint(
        "ck_invitations_status",
        "invitations",
        "status IN ('scheduled', 'sending', 'sent', 'failed', 'responded')",
        schema=SCHEMA,
    )
