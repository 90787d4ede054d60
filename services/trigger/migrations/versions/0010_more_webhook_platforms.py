"""Webhook endpoints for Stripe, Intercom, Zammad and Help Scout: the platform check admits them.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = "trigger"
CHECK = "ck_webhook_endpoints_platform"
OLD = ("shopify", "woocommerce", "zendesk", "freshdesk", "generic")
NEW = ("stripe", "intercom", "zammad", "helpscout")


def _listed(platforms: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{platform}'" for platform in platforms) + ")"


def upgrade() -> None:
    op.drop_constraint(CHECK, "webhook_endpoints", schema=SCHEMA, type_="check")
    op.create_check_constraint(CHECK, "webhook_endpoints", f"platform IN {_listed(OLD + NEW)}", schema=SCHEMA)


def downgrade() -> None:
    # The old check cannot hold receivers of the new platforms: downgrading removes them.
    op.execute(f"DELETE FROM {SCHEMA}.webhook_endpoints WHERE platform IN {_listed(NEW)}")
    op.drop_constraint(CHECK, "webhook_endpoints", schema=SCHEMA, type_="check")
    op.create_check_constraint(CHECK, "webhook_endpoints", f"platform IN {_listed(OLD)}", schema=SCHEMA)
