"""The sending rate and the public page limits, shared by every replica of the survey: one GCRA
row per bucket (a tenant's sending rate, a client, a link), and the slots that invitations put
back by the rate already hold.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "survey"


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("rate_buckets_tat", "rate_buckets", ["tat"], schema=SCHEMA)
    op.create_table(
        "rate_slots",
        sa.Column("invitation_id", sa.Uuid(), primary_key=True),
        sa.Column("at", sa.Float(precision=53), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("rate_slots_at", "rate_slots", ["at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("rate_slots", schema=SCHEMA)
    op.drop_table("rate_buckets", schema=SCHEMA)
