"""Answers can be revised: keep each answer's current version, and version the tallies.

A revised score (``survey.response_updated``) moves its answer between categories, so scoring now
holds each answer's revision and score. Tallies get a version that names each state of the score;
it starts at the number of answers, which is what named a state while tallies only grew.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "scoring"


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("response_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.add_column("tallies", sa.Column("version", sa.BigInteger, nullable=True), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.tallies SET version = promoters + passives + detractors")
    op.alter_column("tallies", "version", nullable=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("tallies", "version", schema=SCHEMA)
    op.drop_table("answers", schema=SCHEMA)
