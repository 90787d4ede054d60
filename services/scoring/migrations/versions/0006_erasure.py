"""Right to erasure: whose answer each scored answer is (new answers only: those held already were
stored without it, and an erasure cannot find them here; they hold no personal data but the
segments), found by index, and the shared tables' erasure lookups.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import add_erasure_lookups

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "scoring"


def upgrade() -> None:
    op.add_column("answers", sa.Column("customer_id", sa.String(200), nullable=True), schema=SCHEMA)
    op.create_index(
        "ix_answers_customer",
        "answers",
        ["tenant_id", "customer_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("customer_id IS NOT NULL"),
    )
    add_erasure_lookups(SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_answers_customer", table_name="answers", schema=SCHEMA)
    op.drop_column("answers", "customer_id", schema=SCHEMA)
