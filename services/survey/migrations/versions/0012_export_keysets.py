"""The customer export's keyset pages: each of a customer's lookups gets its keyset's columns, so a
page is read down the index (``WHERE tenant AND customer AND (keyset) < (cursor) ORDER BY keyset
DESC LIMIT n``) instead of sorting the customer's whole history for each page. Each index keeps its
name and its leading columns, so the queries it served before are served as they were.

Not CONCURRENTLY: the whole history runs in one transaction under the migration lock. On a very
large table, build the new index by hand beforehand under another name, then swap.

Revision ID: 0012
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    op.drop_index("ix_invitations_customer", table_name="invitations", schema=SCHEMA)
    op.create_index(
        "ix_invitations_customer",
        "invitations",
        ["tenant_id", "customer_id", "created_at", "id"],
        schema=SCHEMA,
    )
    op.drop_index("ix_responses_customer", table_name="responses", schema=SCHEMA)
    op.create_index(
        "ix_responses_customer",
        "responses",
        ["tenant_id", "customer_id", "responded_at", "id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_invitations_customer", table_name="invitations", schema=SCHEMA)
    op.create_index(
        "ix_invitations_customer", "invitations", ["tenant_id", "customer_id", "created_at"], schema=SCHEMA
    )
    op.drop_index("ix_responses_customer", table_name="responses", schema=SCHEMA)
    op.create_index("ix_responses_customer", "responses", ["tenant_id", "customer_id"], schema=SCHEMA)
