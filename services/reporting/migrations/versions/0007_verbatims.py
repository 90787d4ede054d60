"""The verbatims feed and the exports: each answer keeps who gave it and its survey context's
snapshot (locale, account, attributes, spend over 12 months), which the feed filters by segment;
each case keeps the answer it follows up. Indexes for the keysets the feed and the exports page by,
the feed's partial on answers with a comment (most answers have none).

Answers and cases recorded so far keep nulls: no segment matches them, and they link to no case.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "reporting"

ANSWER_COLUMNS = (
    ("customer_id", sa.String(200)),
    ("locale", sa.Text),
    ("account_id", sa.String(200)),
    ("attributes", postgresql.JSONB),
    ("spend_12m", postgresql.JSONB),
)
COMMENTED = sa.text("comment <> ''")
OPENED = sa.text("coalesce(opened_at, updated_at)")


def upgrade() -> None:
    for name, column_type in ANSWER_COLUMNS:
        op.add_column("responses", sa.Column(name, column_type), schema=SCHEMA)
    op.add_column("cases", sa.Column("response_id", sa.Uuid), schema=SCHEMA)

    # The keyset (tenant, responded_at, response_id) replaces the index on its first two columns.
    op.drop_index("ix_responses_tenant_responded_at", table_name="responses", schema=SCHEMA)
    op.create_index(
        "ix_responses_tenant_responded_at",
        "responses",
        ["tenant_id", "responded_at", "response_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_responses_commented",
        "responses",
        ["tenant_id", "responded_at", "response_id"],
        schema=SCHEMA,
        postgresql_where=COMMENTED,
    )
    op.create_index(
        "ix_responses_commented_touchpoint",
        "responses",
        ["tenant_id", "touchpoint", "responded_at", "response_id"],
        schema=SCHEMA,
        postgresql_where=COMMENTED,
    )
    op.drop_index("ix_cases_tenant_opened", table_name="cases", schema=SCHEMA)
    op.create_index("ix_cases_tenant_opened", "cases", ["tenant_id", OPENED, "case_id"], schema=SCHEMA)
    op.create_index("ix_cases_tenant_response", "cases", ["tenant_id", "response_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_cases_tenant_response", table_name="cases", schema=SCHEMA)
    op.drop_index("ix_cases_tenant_opened", table_name="cases", schema=SCHEMA)
    op.create_index("ix_cases_tenant_opened", "cases", ["tenant_id", OPENED], schema=SCHEMA)
    op.drop_index("ix_responses_commented_touchpoint", table_name="responses", schema=SCHEMA)
    op.drop_index("ix_responses_commented", table_name="responses", schema=SCHEMA)
    op.drop_index("ix_responses_tenant_responded_at", table_name="responses", schema=SCHEMA)
    op.create_index(
        "ix_responses_tenant_responded_at", "responses", ["tenant_id", "responded_at"], schema=SCHEMA
    )
    op.drop_column("cases", "response_id", schema=SCHEMA)
    for name, _ in reversed(ANSWER_COLUMNS):
        op.drop_column("responses", name, schema=SCHEMA)
