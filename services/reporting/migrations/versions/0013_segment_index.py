"""The segments panel reads every value of one dimension over a range of cells: an index on
(tenant, dimension, bucket, start) that carries the touchpoint, the value and the distribution
(``INCLUDE``), so each of the range's spans (days, months, days) is one contiguous index-only
range, not one search per value with the day cells fetched from the heap.

Revision ID: 0013
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SCHEMA = "reporting"
INDEX = "ix_nps_cells_tenant_dimension_bucket_start"


def upgrade() -> None:
    op.create_index(
        INDEX,
        "nps_cells",
        ["tenant_id", "dimension", "bucket", "start"],
        postgresql_include=["touchpoint", "value", *(f"s{score}" for score in range(11))],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="nps_cells", schema=SCHEMA)
