"""The score cells scoring announces on ``nps.updated.v1``: per touchpoint, UTC day, ISO week or
calendar month, and segment (or everybody), the 0-10 distribution at its highest version. The
insight panels (scores, trend, segments) and the live stream read them.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    op.create_table(
        "nps_cells",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("bucket", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date, primary_key=True),
        *(sa.Column(f"s{score}", sa.BigInteger, nullable=False) for score in range(11)),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_nps_cells_tenant_segment_bucket_start",
        "nps_cells",
        ["tenant_id", "dimension", "value", "bucket", "start"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("nps_cells", schema=SCHEMA)
