"""Look customers up by address case-insensitively through an index: the suppression check runs on
every batch, and without it each batch scanned the whole customer table.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.drop_index("ix_customers_email", "customers", schema=SCHEMA)
    op.create_index(
        "ix_customers_email_lower", "customers", ["tenant_id", sa.text("lower(email)")], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_customers_email_lower", "customers", schema=SCHEMA)
    op.create_index("ix_customers_email", "customers", ["tenant_id", "email"], schema=SCHEMA)
