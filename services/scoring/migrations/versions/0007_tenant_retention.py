"""The tenant's retention (tenant.retention_set.v1): after how many months customers' comments are
removed and invitations anonymised; scoring holds neither, it only keeps the tenant's copy whole.

Revision ID: 0007
"""

from libs.common.migrations import add_tenant_retention, drop_tenant_retention

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "scoring"


def upgrade() -> None:
    add_tenant_retention(SCHEMA)


def downgrade() -> None:
    drop_tenant_retention(SCHEMA)
