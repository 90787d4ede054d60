"""The tenant's retention (tenant.retention_set.v1): after how many months customers' comments are
removed and invitations anonymised; the trigger owns the setting (GET/PUT /v1/privacy/retention).

Revision ID: 0013
"""

from libs.common.migrations import add_tenant_retention, drop_tenant_retention

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    add_tenant_retention(SCHEMA)


def downgrade() -> None:
    drop_tenant_retention(SCHEMA)
