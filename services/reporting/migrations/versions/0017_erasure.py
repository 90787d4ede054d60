"""Right to erasure: the shared tables' erasure lookups (outbox by customer, held events by key).
Reporting's own lookups by customer (answers, purchases) have their indexes already.

Revision ID: 0017
"""

from libs.common.migrations import add_erasure_lookups

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    add_erasure_lookups(SCHEMA)


def downgrade() -> None:
    pass
