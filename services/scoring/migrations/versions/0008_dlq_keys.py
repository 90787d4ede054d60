"""The keys this service's DLQ copies are sealed under, with whose message each copy is: erasing the
customer deletes their keys, so the copies on the broker can no longer be read (libs/common/sealing.py).

Revision ID: 0008
"""

from libs.common.migrations import create_dlq_keys, drop_dlq_keys

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "scoring"


def upgrade() -> None:
    create_dlq_keys(SCHEMA)


def downgrade() -> None:
    drop_dlq_keys(SCHEMA)
