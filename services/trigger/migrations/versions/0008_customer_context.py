"""What ``customer.upserted.v1`` says about a customer for routing their follow-up cases: the
account's owner and the customer's attributes, carried on each survey request they are asked by.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.add_column("customers", sa.Column("account_owner_email", sa.String(320), nullable=True), schema=SCHEMA)
    op.add_column("customers", sa.Column("attributes", JSONB, nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("customers", "attributes", schema=SCHEMA)
    op.drop_column("customers", "account_owner_email", schema=SCHEMA)
