"""The customer export's keyset pages: each of a customer's lookups gets its keyset's columns, so a
page is read down the index (``WHERE tenant AND customer AND (keyset) < (cursor) ORDER BY keyset
DESC LIMIT n``) instead of sorting the customer's whole history for each page. Each index keeps its
name and its leading columns, so the queries it served before are served as they were.

Not CONCURRENTLY: the whole history runs in one transaction under the migration lock. On a very
large table, build the new index by hand beforehand under another name, then swap.

Revision ID: 0016
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SCHEMA = "trigger"


def upgrade() -> None:
    op.drop_index("ix_decisions_customer", table_name="decisions", schema=SCHEMA)
    op.create_index(
        "ix_decisions_customer", "decisions", ["tenant_id", "customer_id", "decided_at", "id"], schema=SCHEMA
    )
    op.drop_index("ix_source_records_customer", table_name="source_records", schema=SCHEMA)
    op.create_index(
        "ix_source_records_customer",
        "source_records",
        ["tenant_id", "customer_id", "decided_at", "source_ref", "touchpoint"],
        schema=SCHEMA,
    )
    op.drop_index("ix_purchases_customer", table_name="purchases", schema=SCHEMA)
    op.create_index(
        "ix_purchases_customer",
        "purchases",
        ["tenant_id", "customer_id", "occurred_at", "order_id"],
        schema=SCHEMA,
        postgresql_include=["currency", "amount_minor"],
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_customer", table_name="decisions", schema=SCHEMA)
    op.create_index(
        "ix_decisions_customer", "decisions", ["tenant_id", "customer_id", "decided_at"], schema=SCHEMA
    )
    op.drop_index("ix_source_records_customer", table_name="source_records", schema=SCHEMA)
    op.create_index(
        "ix_source_records_customer", "source_records", ["tenant_id", "customer_id"], schema=SCHEMA
    )
    op.drop_index("ix_purchases_customer", table_name="purchases", schema=SCHEMA)
    op.create_index(
        "ix_purchases_customer",
        "purchases",
        ["tenant_id", "customer_id", "occurred_at"],
        schema=SCHEMA,
        postgresql_include=["currency", "amount_minor"],
    )
