"""A permanent unsubscribe keeps no address: the survey's suppression list holds keyed hashes, and
an address that unsubscribed is still refused afterwards, under any customer id and any case."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from libs.common.migrations import upgrade
from services.survey.domain.suppression import DEV_PRIVACY_HASH_KEY, address_hash
from services.survey.domain.tokens import survey_token
from services.survey.repository import SurveyRepository
from services.trigger.domain.consent import address_record
from services.trigger.repository import TriggerRepository
from tests.conftest import Mailbox, StartService
from tests.integration.test_survey_flow import (
    SECRET,
    asked_once,
    email_to,
    invitation_in,
    mail_to,
    request_survey,
    unique_address,
)
from tests.support.factories import cloud_event, purchase
from tests.support.services import post_event, trigger_with_tenant

MIGRATIONS = Path(__file__).parents[2] / "services" / "survey" / "migrations"
TRIGGER_MIGRATIONS = Path(__file__).parents[2] / "services" / "trigger" / "migrations"


async def test_an_unsubscribe_is_kept_as_a_hash_and_still_refuses_the_address(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service, tenant, customer, address, first = await asked_once(start_service, kafka_bootstrap)
    await email_to(smtp_sink.directory, address)
    token = survey_token(SECRET, first)
    done = await service.client.post(f"/u/{token}")
    assert done.status_code == 200 and "You are unsubscribed" in done.text

    async with service.runtime.database.uow() as uow:
        rows = (
            await uow.session.execute(
                text("SELECT * FROM survey.suppressions WHERE tenant_id = :tenant"),
                {"tenant": tenant.tenant_id},
            )
        ).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0]).lower()
    local_part = address.split("@")[0]
    assert local_part not in stored and address not in stored
    assert "unsubscribed" in stored

    # As after an erasure: another customer id, the address in capitals. Still never emailed.
    later = await request_survey(kafka_bootstrap, tenant, customer=f"{customer}-new", email=address.upper())
    failed = await invitation_in(service, tenant, f"{customer}-new", later, "failed")
    assert "unsubscribed" in failed["last_error"]
    assert len(mail_to(smtp_sink.directory, address)) == 1


async def test_the_migration_hashes_the_addresses_already_suppressed(pg_url: str) -> None:
    """A database from before 0008 keeps its suppressions, as hashes: the address is refused still."""
    database = f"survey_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = make_url(pg_url).set(database=database).render_as_string(hide_password=False)
    engine = create_async_engine(url, poolclass=NullPool)
    tenant, address = uuid.uuid4(), "Jane.Doe@Example.com"
    # The migration hashes with the environment's key, as the service would at start-up.
    key = os.environ.get("PRIVACY_HASH_KEY") or DEV_PRIVACY_HASH_KEY
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, url, "0008")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO survey.suppressions (tenant_id, email_lower, reason, suppressed_at) "
                    "VALUES (:tenant, :email, 'unsubscribed', now())"
                ),
                {"tenant": tenant, "email": address.lower()},
            )
        await asyncio.to_thread(upgrade, MIGRATIONS, url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT * FROM survey.suppressions"))).mappings().all()
            repository = SurveyRepository(AsyncSession(bind=connection), privacy_hash_key=key)
            refused = await repository.suppressed([(tenant, address), (tenant, "someone@example.com")])
        assert [dict(row) for row in rows] == [
            {
                "tenant_id": tenant,
                "email_hash": address_hash(key, address),
                "reason": "unsubscribed",
                "suppressed_at": rows[0]["suppressed_at"],
            }
        ]
        assert refused == {(tenant, address.lower())}
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


async def test_the_trigger_keeps_an_unsubscribe_by_address_as_a_hash(start_service: StartService) -> None:
    """An unsubscribe naming only an address leaves no address in the trigger's tables, and a later
    order under any customer id with that address is still not surveyed (as after an erasure)."""
    trigger, tenant = await trigger_with_tenant(start_service)
    address = unique_address().replace("jane", "Jane")
    gone = cloud_event("customer.unsubscribed.v1", {"email": address, "reason": "unsubscribed"}, "nobody")
    gone["data"].pop("customer_id", None)
    recorded = await post_event(trigger, tenant, gone)
    assert recorded["reason"] == "unsubscribed"

    async with trigger.runtime.database.uow() as uow:
        dumped = [
            " ".join(str(value) for value in row).lower()
            for table in ("customers", "decisions")
            for row in (
                await uow.session.execute(
                    text(f"SELECT * FROM trigger.{table} WHERE tenant_id = :tenant"),
                    {"tenant": tenant.tenant_id},
                )
            ).all()
        ]
    assert dumped and not [row for row in dumped if address.lower().split("@")[0] in row]

    later = await post_event(trigger, tenant, purchase(f"c-{uuid.uuid4().hex[:8]}", email=address.upper()))
    assert (later["decision"], later["reason"]) == ("skipped", "unsubscribed")


async def test_the_trigger_migration_replaces_records_by_address_with_hashes(pg_url: str) -> None:
    """A trigger database from before 0011: the record by address and its decision now name the
    hash, and a suppressed customer's address has a record of its own."""
    database = f"trigger_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = make_url(pg_url).set(database=database).render_as_string(hide_password=False)
    engine = create_async_engine(url, poolclass=NullPool)
    key = os.environ.get("PRIVACY_HASH_KEY") or DEV_PRIVACY_HASH_KEY
    tenant, unknown, known = uuid.uuid4(), "Someone@Example.com", "jane@example.com"
    try:
        await asyncio.to_thread(upgrade, TRIGGER_MIGRATIONS, url, "0013")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO trigger.customers (tenant_id, customer_id, last_event_at, email, "
                    "suppressed_at, suppression_reason) VALUES "
                    "(:tenant, :placeholder, now(), :unknown, now(), 'unsubscribed'), "
                    "(:tenant, 'c-1', now(), :known, now(), 'hard_bounce')"
                ),
                {
                    "tenant": tenant,
                    "placeholder": f"email:{unknown.lower()}",
                    "unknown": unknown,
                    "known": known,
                },
            )
            await connection.execute(
                text(
                    "INSERT INTO trigger.decisions (tenant_id, event_id, event_type, customer_id, outcome, "
                    "reason, rest_period_days, decided_at) VALUES (:tenant, 'e-1', "
                    "'customer.unsubscribed.v1', :placeholder, 'recorded', 'unsubscribed', 180, now())"
                ),
                {"tenant": tenant, "placeholder": f"email:{unknown.lower()}"},
            )
        await asyncio.to_thread(upgrade, TRIGGER_MIGRATIONS, url)
        async with engine.connect() as connection:
            customers: dict[str, str | None] = dict(
                (
                    await connection.execute(
                        text("SELECT customer_id, email FROM trigger.customers WHERE tenant_id = :tenant"),
                        {"tenant": tenant},
                    )
                ).all()
            )
            decided = await connection.scalar(
                text("SELECT customer_id FROM trigger.decisions WHERE tenant_id = :tenant"),
                {"tenant": tenant},
            )
            repository = TriggerRepository(AsyncSession(bind=connection), privacy_hash_key=key)
            refused = await repository.suppressed_emails(tenant, [unknown, known, "other@example.com"])
        assert customers == {
            address_record(key, unknown): None,
            address_record(key, known): None,
            "c-1": known,
        }
        assert decided == address_record(key, unknown)
        assert refused == {unknown.lower(), known}
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()
