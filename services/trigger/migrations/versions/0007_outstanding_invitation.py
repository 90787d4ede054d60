"""Each customer's outstanding invitation: under the response clock nobody is invited again while
an invitation waits for an answer, and a closure (answered, expired, failed, cancelled) only
closes the invitation it names.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.add_column(
        "customers", sa.Column("outstanding_invitation_id", sa.Uuid(), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("customers", "outstanding_invitation_id", schema=SCHEMA)
