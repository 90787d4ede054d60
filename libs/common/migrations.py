"""Alembic glue: each service has its own migration history, in its own schema.

A service's ``migrations/env.py`` is two lines that call :func:`run_env` with the service's
metadata. :func:`upgrade` runs a history to head; services do it on start unless told not to,
and concurrent starts are serialised by an advisory lock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from libs.common.db import add_common_tables, engine_url_and_connect_args


def alembic_config(script_location: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(script_location: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(script_location, url), revision)


def run_env(metadata: MetaData) -> None:
    schema = metadata.schema
    if schema is None:
        raise RuntimeError("a service's metadata must name its schema")
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata, schema))


async def _run_online(url: str, metadata: MetaData, schema: str) -> None:
    engine_url, connect_args = engine_url_and_connect_args(url)
    engine = create_async_engine(engine_url, poolclass=NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, metadata, schema)
    finally:
        await engine.dispose()


def _migrate(connection: Connection, metadata: MetaData, schema: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=False,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"nps-migrate-{schema}"}
        )
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.run_migrations()


def create_common_tables(schema: str) -> None:
    """For a service's first revision: outbox, processed_events, relay_state, tenants, api_keys."""
    from alembic import op

    metadata = MetaData(schema=schema)
    add_common_tables(metadata)
    metadata.create_all(op.get_bind())


def add_tenant_display_name_and_held_events(schema: str) -> None:
    """Issue 8, in every service: the tenant's display name, and the table of events held while
    their tenant is not known yet. A database created since has them already: the first revision
    builds the common tables from the current declarations."""
    from alembic import op

    op.execute(f'ALTER TABLE "{schema}".tenants ADD COLUMN IF NOT EXISTS display_name varchar(200)')
    metadata = MetaData(schema=schema)
    add_common_tables(metadata).held_events.create(op.get_bind(), checkfirst=True)


def add_tenant_retention(schema: str) -> None:
    """Issue 13, in every service: the tenant's retention (``tenant.retention_set.v1``). A database
    created since has the columns already (the first revision builds the current common tables)."""
    from alembic import op

    for column in ("retention_comments_months", "retention_invitations_months"):
        op.execute(f'ALTER TABLE "{schema}".tenants ADD COLUMN IF NOT EXISTS {column} smallint')


def drop_tenant_retention(schema: str) -> None:
    from alembic import op

    for column in ("retention_comments_months", "retention_invitations_months"):
        op.execute(f'ALTER TABLE "{schema}".tenants DROP COLUMN IF EXISTS {column}')


def create_session_table(schema: str) -> None:
    """Issue 10, in the services with pages (alerting, reporting): people's sessions."""
    from alembic import op

    from libs.common.sessions import add_session_table

    metadata = MetaData(schema=schema)
    add_session_table(metadata)
    metadata.create_all(op.get_bind())


def add_erasure_lookups(schema: str) -> None:
    """Issue 13, in every service: whose event each outbox row is, and the indexes an erasure finds
    a customer's outbox rows and held events by. A database created since has them already."""
    from alembic import op

    op.execute(f'ALTER TABLE "{schema}".outbox ADD COLUMN IF NOT EXISTS tenant_id varchar(100)')
    op.execute(f'ALTER TABLE "{schema}".outbox ADD COLUMN IF NOT EXISTS customer_id varchar(200)')
    op.execute(
        f'CREATE INDEX IF NOT EXISTS ix_outbox_customer ON "{schema}".outbox (tenant_id, customer_id) '
        "WHERE customer_id IS NOT NULL"
    )
    op.execute(f'CREATE INDEX IF NOT EXISTS ix_held_events_key ON "{schema}".held_events (tenant_id, key)')


def create_dlq_keys(schema: str) -> None:
    """Issue 13, in every service: the keys its DLQ copies are sealed under (libs/common/sealing.py).
    A database created since has the table already (the first revision builds the common tables)."""
    from alembic import op

    metadata = MetaData(schema=schema)
    add_common_tables(metadata).dlq_keys.create(op.get_bind(), checkfirst=True)


def drop_dlq_keys(schema: str) -> None:
    from alembic import op

    op.execute(f'DROP TABLE IF EXISTS "{schema}".dlq_keys')
