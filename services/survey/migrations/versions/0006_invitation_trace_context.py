"""The trace context of the request that made each invitation, so that sending it and the answer
to it continue the purchase's trace (libs/common/tracing.py).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    op.add_column("invitations", sa.Column("trace_context", postgresql.JSONB(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("invitations", "trace_context", schema=SCHEMA)
