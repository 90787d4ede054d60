"""Spend in cells: per cell and currency, the answers' 12-month spend snapshots summed per NPS
group (minor units, never converted), and on each answer its snapshot, so that a revision moves
that spend to the answer's new group. Answers held already have no snapshot: they add nothing.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "scoring"


def upgrade() -> None:
    op.create_table(
        "spend_cells",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("bucket", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date, primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("promoters", sa.BigInteger, nullable=False),
        sa.Column("passives", sa.BigInteger, nullable=False),
        sa.Column("detractors", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "answers",
        sa.Column("spend", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("answers", "spend", schema=SCHEMA)
    op.drop_table("spend_cells", schema=SCHEMA)
