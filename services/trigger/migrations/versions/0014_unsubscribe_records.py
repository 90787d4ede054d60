"""Unsubscribes kept by address keep the address's keyed hash instead (services/trigger/domain/consent.py):
the ``email:<address>`` customer records become ``email:<hash>`` without an email, their decisions
follow, and every suppressed customer with an address gets such a record, so that the unsubscribe
outlives the customer's erasure.

The hash uses PRIVACY_HASH_KEY from the environment of the process that runs the migration (the
service's own at start-up), or the development default, as the survey's 0008.

Revision ID: 0014
"""

import hashlib
import hmac
import os

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SCHEMA = "trigger"
BATCH = 1000
# As libs/common/privacy.py had them when this was written: a migration is frozen.
DEV_PRIVACY_HASH_KEY = "dev-privacy-hash-key"


def _record(key: str, email: str) -> str:
    return "email:" + hmac.new(key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def upgrade() -> None:
    key = os.environ.get("PRIVACY_HASH_KEY") or DEV_PRIVACY_HASH_KEY
    connection = op.get_bind()
    # Every suppressed address, whether a record of its own or a customer's.
    last = ("", "")
    while True:
        rows = connection.execute(
            sa.text(
                f"SELECT tenant_id, customer_id, email, suppressed_at, suppression_reason, last_event_at "
                f"FROM {SCHEMA}.customers WHERE suppressed_at IS NOT NULL AND email IS NOT NULL "
                "AND (CAST(tenant_id AS text), customer_id) > (:tenant, :customer) "
                "ORDER BY CAST(tenant_id AS text), customer_id LIMIT :batch"
            ),
            {"tenant": last[0], "customer": last[1], "batch": BATCH},
        ).all()
        if not rows:
            break
        last = (str(rows[-1].tenant_id), rows[-1].customer_id)
        connection.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.customers (tenant_id, customer_id, last_event_at, suppressed_at, "
                "suppression_reason) VALUES (:tenant, :record, :at, :suppressed_at, :reason) "
                "ON CONFLICT (tenant_id, customer_id) DO NOTHING"
            ),
            [
                {
                    "tenant": row.tenant_id,
                    "record": _record(key, row.email),
                    "at": row.last_event_at,
                    "suppressed_at": row.suppressed_at,
                    "reason": row.suppression_reason,
                }
                for row in rows
            ],
        )
    # The old records by address: their decisions now name the hashed record, and they go.
    old = connection.execute(
        sa.text(f"SELECT tenant_id, customer_id FROM {SCHEMA}.customers WHERE customer_id LIKE 'email:%%@%%'")
    ).all()
    for tenant_id, customer_id in old:
        record = _record(key, customer_id[len("email:") :])
        for table in ("decisions", "source_records", "customer_touchpoints"):
            connection.execute(
                sa.text(
                    f"UPDATE {SCHEMA}.{table} SET customer_id = :record "
                    "WHERE tenant_id = :tenant AND customer_id = :old"
                ),
                {"record": record, "tenant": tenant_id, "old": customer_id},
            )
        connection.execute(
            sa.text(f"DELETE FROM {SCHEMA}.customers WHERE tenant_id = :tenant AND customer_id = :old"),
            {"tenant": tenant_id, "old": customer_id},
        )


def downgrade() -> None:
    raise RuntimeError("0011 cannot be undone: the unsubscribe records no longer hold addresses")
