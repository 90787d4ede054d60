"""What each invitation is about (the order or ticket, the customer's account, its owner and
attributes), as the trigger's request carried it: the answer passes it on to follow-up routing.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    op.add_column("invitations", sa.Column("context", postgresql.JSONB(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("invitations", "context", schema=SCHEMA)
