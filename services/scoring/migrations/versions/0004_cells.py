"""Cells: NPS per touchpoint x segment x UTC day, ISO week and calendar month, as counts per score.

Adds the cells, the segment values each tenant's dimensions hold (the cardinality bound), the
dimensions a tenant declares, and on each answer where its first version was counted (its UTC date
and its segments), so a revision undoes exactly that count. Tallies gain the distribution too.

Answers held already are backfilled as well as they can be: their date is that of their last
change (the answer's own time was not kept), they have no segments, and only the answers held
since 0002 are known by score, so a tally older than that keeps the counts its cells lack.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "scoring"
SCORES = [f"s{score}" for score in range(11)]


def _distribution() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in SCORES]


def _counts_of_answers() -> str:
    return ", ".join(f"count(*) FILTER (WHERE score = {score}) AS s{score}" for score in range(11))


def upgrade() -> None:
    op.create_table(
        "cells",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("bucket", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date, primary_key=True),
        *_distribution(),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "cells_segment_idx", "cells", ["tenant_id", "dimension", "value", "bucket", "start"], schema=SCHEMA
    )
    op.create_table(
        "segment_values",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "segment_dimensions",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("position", sa.SmallInteger, nullable=False),
        schema=SCHEMA,
    )
    for column in _distribution():
        op.add_column("tallies", column, schema=SCHEMA)
    op.add_column("answers", sa.Column("responded_on", sa.Date, nullable=True), schema=SCHEMA)
    op.add_column(
        "answers",
        sa.Column("segments", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=SCHEMA,
    )
    op.execute(f"UPDATE {SCHEMA}.answers SET responded_on = (updated_at AT TIME ZONE 'UTC')::date")
    op.alter_column("answers", "responded_on", nullable=False, schema=SCHEMA)
    _backfill()


def _backfill() -> None:
    scores = ", ".join(SCORES)
    op.execute(
        f"UPDATE {SCHEMA}.tallies AS t SET ({scores}) = (SELECT {_counts_of_answers()} "
        f"FROM {SCHEMA}.answers AS a WHERE a.tenant_id = t.tenant_id AND a.touchpoint = t.touchpoint)"
    )
    starts = {
        "day": "responded_on",
        "week": "date_trunc('week', responded_on)::date",
        "month": "date_trunc('month', responded_on)::date",
    }
    for bucket, start in starts.items():
        op.execute(
            f"INSERT INTO {SCHEMA}.cells (tenant_id, touchpoint, dimension, value, bucket, start, "
            f"{scores}, version, updated_at) "
            f"SELECT tenant_id, touchpoint, '', '', '{bucket}', {start}, {_counts_of_answers()}, "
            f"count(*), now() FROM {SCHEMA}.answers GROUP BY tenant_id, touchpoint, {start}"
        )


def downgrade() -> None:
    op.drop_column("answers", "segments", schema=SCHEMA)
    op.drop_column("answers", "responded_on", schema=SCHEMA)
    for name in SCORES:
        op.drop_column("tallies", name, schema=SCHEMA)
    op.drop_table("segment_dimensions", schema=SCHEMA)
    op.drop_table("segment_values", schema=SCHEMA)
    op.drop_index("cells_segment_idx", table_name="cells", schema=SCHEMA)
    op.drop_table("cells", schema=SCHEMA)
