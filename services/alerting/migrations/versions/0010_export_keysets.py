"""The customer export's keyset pages: each of a customer's lookups gets its keyset's columns, so a
page is read down the index (``WHERE tenant AND customer AND (keyset) < (cursor) ORDER BY keyset
DESC LIMIT n``) instead of sorting the customer's whole history for each page. Each index keeps its
name and its leading columns, so the queries it served before are served as they were.

Not CONCURRENTLY: the whole history runs in one transaction under the migration lock. On a very
large table, build the new index by hand beforehand under another name, then swap.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = "alerting"


def upgrade() -> None:
    op.drop_index("ix_followup_cases_customer", table_name="followup_cases", schema=SCHEMA)
    op.create_index(
        "ix_followup_cases_customer",
        "followup_cases",
        ["tenant_id", "customer_id", "opened_at", "id"],
        schema=SCHEMA,
    )
    op.drop_index("ix_answers_customer", table_name="answers", schema=SCHEMA)
    op.create_index(
        "ix_answers_customer",
        "answers",
        ["tenant_id", "customer_id", "responded_at", "response_id"],
        schema=SCHEMA,
    )
    op.drop_index("ix_notifications_case", table_name="notifications", schema=SCHEMA)
    op.create_index("ix_notifications_case", "notifications", ["tenant_id", "case_id", "id"], schema=SCHEMA)
    op.drop_index("ix_webhook_deliveries_customer", table_name="webhook_deliveries", schema=SCHEMA)
    op.create_index(
        "ix_webhook_deliveries_customer",
        "webhook_deliveries",
        ["tenant_id", "customer_id", "id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_followup_cases_customer", table_name="followup_cases", schema=SCHEMA)
    op.create_index(
        "ix_followup_cases_customer", "followup_cases", ["tenant_id", "customer_id"], schema=SCHEMA
    )
    op.drop_index("ix_answers_customer", table_name="answers", schema=SCHEMA)
    op.create_index(
        "ix_answers_customer", "answers", ["tenant_id", "customer_id", "responded_at"], schema=SCHEMA
    )
    op.drop_index("ix_notifications_case", table_name="notifications", schema=SCHEMA)
    op.create_index("ix_notifications_case", "notifications", ["tenant_id", "case_id"], schema=SCHEMA)
    op.drop_index("ix_webhook_deliveries_customer", table_name="webhook_deliveries", schema=SCHEMA)
    op.create_index(
        "ix_webhook_deliveries_customer", "webhook_deliveries", ["tenant_id", "customer_id"], schema=SCHEMA
    )
