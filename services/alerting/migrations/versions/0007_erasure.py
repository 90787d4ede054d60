"""Right to erasure: the emails about a case (and a tenant's digests) found by index, and the shared
tables' erasure lookups (outbox by customer, held events by key).

Revision ID: 0007
"""

from alembic import op

from libs.common.migrations import add_erasure_lookups

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    op.create_index("ix_notifications_case", "notifications", ["tenant_id", "case_id"], schema=SCHEMA)
    add_erasure_lookups(SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_notifications_case", table_name="notifications", schema=SCHEMA)
