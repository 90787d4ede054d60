"""Revenue at risk: each score cell keeps the spend its event carries (per currency and NPS group,
minor units, never converted), and each tenant may set the churn probabilities it is reckoned with.
Cells stored before have no spend (null): they add nothing until scoring announces them again.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    op.add_column("nps_cells", sa.Column("spend", JSONB, nullable=True), schema=SCHEMA)
    op.create_table(
        "report_settings",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("detractor_churn", sa.Float, nullable=False),
        sa.Column("passive_churn", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("detractor_churn BETWEEN 0 AND 1", name="ck_report_settings_detractor_churn"),
        sa.CheckConstraint("passive_churn BETWEEN 0 AND 1", name="ck_report_settings_passive_churn"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("report_settings", schema=SCHEMA)
    op.drop_column("nps_cells", "spend", schema=SCHEMA)
