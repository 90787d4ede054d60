"""People's sessions, kept from ``session.started`` and ``session.ended``: one sign-in at the case
desk opens the report too.

Revision ID: 0004
"""

from alembic import op

from libs.common.migrations import create_session_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "reporting"


def upgrade() -> None:
    create_session_table(SCHEMA)


def downgrade() -> None:
    op.drop_table("web_sessions", schema=SCHEMA)
