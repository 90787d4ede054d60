"""Webhook endpoints: one per configured platform receiver, named by an unguessable id.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("platform", sa.String(20), nullable=False),
        # In clear: an HMAC can only be checked with the key itself.
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("mapping", JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "platform IN ('shopify', 'woocommerce', 'zendesk', 'freshdesk', 'generic')",
            name="ck_webhook_endpoints_platform",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_webhook_endpoints_tenant", "webhook_endpoints", ["tenant_id", "created_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_endpoints_tenant", "webhook_endpoints", schema=SCHEMA)
    op.drop_table("webhook_endpoints", schema=SCHEMA)
