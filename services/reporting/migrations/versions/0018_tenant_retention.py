"""The tenant's retention (tenant.retention_set.v1): after how many months customers' comments are
removed and invitations anonymised; the retention job finds old comments through ix_responses_commented.

Revision ID: 0018
"""

from libs.common.migrations import add_tenant_retention, drop_tenant_retention

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    add_tenant_retention(SCHEMA)


def downgrade() -> None:
    drop_tenant_retention(SCHEMA)
