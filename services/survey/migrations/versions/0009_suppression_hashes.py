"""The suppression list keeps a keyed hash of each address, not the address, so that an unsubscribe
outlives the customer's erasure without the list naming anyone (services/survey/domain/suppression.py).

Existing rows are hashed here, in batches, with PRIVACY_HASH_KEY from the environment of the process
that runs the migration (the service's own at start-up), or the development default.

Revision ID: 0009
"""

import hashlib
import hmac
import os

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SCHEMA = "survey"
BATCH = 1000
# As services/survey/domain/suppression.py had them when this was written: a migration is frozen.
DEV_PRIVACY_HASH_KEY = "dev-privacy-hash-key"


def address_hash(key: str, email: str) -> str:
    return hmac.new(key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def upgrade() -> None:
    key = os.environ.get("PRIVACY_HASH_KEY") or DEV_PRIVACY_HASH_KEY
    op.add_column("suppressions", sa.Column("email_hash", sa.String(64)), schema=SCHEMA)
    connection = op.get_bind()
    while True:
        rows = connection.execute(
            sa.text(
                f"SELECT tenant_id, email_lower FROM {SCHEMA}.suppressions "
                "WHERE email_hash IS NULL LIMIT :batch"
            ),
            {"batch": BATCH},
        ).all()
        if not rows:
            break
        connection.execute(
            sa.text(
                f"UPDATE {SCHEMA}.suppressions SET email_hash = :hash "
                "WHERE tenant_id = :tenant AND email_lower = :email"
            ),
            [{"hash": address_hash(key, email), "tenant": tenant, "email": email} for tenant, email in rows],
        )
    # Two spellings of one address were one row already (email_lower), so the hashes are unique.
    op.drop_constraint("suppressions_pkey", "suppressions", schema=SCHEMA)
    op.drop_column("suppressions", "email_lower", schema=SCHEMA)
    op.alter_column("suppressions", "email_hash", nullable=False, schema=SCHEMA)
    op.create_primary_key("suppressions_pkey", "suppressions", ["tenant_id", "email_hash"], schema=SCHEMA)


def downgrade() -> None:
    # The addresses are gone; what was suppressed cannot be named again.
    raise RuntimeError("0008 cannot be undone: the suppression list no longer holds addresses")
