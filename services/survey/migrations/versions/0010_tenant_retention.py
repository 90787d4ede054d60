"""The tenant's retention (tenant.retention_set.v1): after how many months customers' comments are
removed and invitations anonymised.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import add_tenant_retention, drop_tenant_retention

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    add_tenant_retention(SCHEMA)
    # The retention job's scans: a tenant's answers with a comment, and invitations still naming
    # someone, by time; a row leaves its index once the job has cleared it.
    op.create_index(
        "ix_responses_retention_comment",
        "responses",
        ["tenant_id", "responded_at"],
        postgresql_where=sa.text("comment IS NOT NULL"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_invitations_retention",
        "invitations",
        ["tenant_id", "created_at"],
        postgresql_where=sa.text("email <> ''"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_invitations_retention", "invitations", schema=SCHEMA)
    op.drop_index("ix_responses_retention_comment", "responses", schema=SCHEMA)
    drop_tenant_retention(SCHEMA)
