"""The tenant's retention (tenant.retention_set.v1): after how many months customers' comments are
removed and invitations anonymised.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

from libs.common.migrations import add_tenant_retention, drop_tenant_retention

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    add_tenant_retention(SCHEMA)
    # The retention job's scans: answers and cases with a comment, by time; a row leaves its
    # index once the job has cleared it.
    op.create_index(
        "ix_answers_retention_comment",
        "answers",
        ["tenant_id", "responded_at"],
        postgresql_where=sa.text("comment IS NOT NULL"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_followup_cases_retention_comment",
        "followup_cases",
        ["tenant_id", "opened_at"],
        postgresql_where=sa.text("comment IS NOT NULL"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifications_retention",
        "notifications",
        ["tenant_id", "created_at"],
        postgresql_where=sa.text("body <> '' AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_retention", "notifications", schema=SCHEMA)
    op.drop_index("ix_followup_cases_retention_comment", "followup_cases", schema=SCHEMA)
    op.drop_index("ix_answers_retention_comment", "answers", schema=SCHEMA)
    drop_tenant_retention(SCHEMA)
