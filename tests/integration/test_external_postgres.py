"""Switching to an external PostgreSQL is configuration only: here a second server, over TCP,
with a password, started by the test from the same binaries (no Debian package needed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from libs.devstack.pg import PasswordPostgres
from libs.devstack.ports import free_port
from services.trigger import handlers
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from tests.conftest import StartService, eventually, metric_value
from tests.support.factories import purchase


@pytest.fixture(scope="module")
def password_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordPostgres]:
    server = PasswordPostgres(Path(tmp_path_factory.mktemp("pg-tcp")), port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_trigger_runs_on_an_external_postgres_over_tcp_with_a_password(
    start_service: StartService, password_postgres: PasswordPostgres
) -> None:
    url = password_postgres.url
    assert "@127.0.0.1:" in url and password_postgres.password in url
    service = await start_service(
        build, TriggerSettings, database_url=url.replace("postgresql+asyncpg", "postgres"), fresh=True
    )
    assert (await service.client.get("/readyz")).json()["checks"] == {"database": "ok", "kafka": "ok"}
    async with service.runtime.database.uow() as uow:
        await handlers.create_tenant(uow, name="external", owner_email=None, now=datetime.now(UTC))
        _, key = await handlers.create_api_key(uow, tenant="external", now=datetime.now(UTC))
        await uow.commit()
    event = purchase("c1", order_id="1")
    response = await service.client.post(
        "/v1/events", json=event, headers={"Authorization": f"Bearer {key.secret}"}
    )
    assert response.json()["results"][0]["decision"] == "invited"

    # The data really is in that server, and the password is really required.
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await connection.fetchval("SELECT count(*) FROM trigger.decisions") == 1
    finally:
        await connection.close()
    wrong = url.replace(password_postgres.password, "wrong-password").replace(
        "postgresql+asyncpg", "postgresql"
    )
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_readiness_shows_on_metrics_and_a_lost_database_turns_it_to_zero(
    start_service: StartService, password_postgres: PasswordPostgres
) -> None:
    """What the NpsServiceNotReady alert reads: 1 per dependency while it answers, 0 once the
    database is gone (here: its server stopped), 1 again when it is back."""
    url = password_postgres.url.replace("postgresql+asyncpg", "postgres")
    service = await start_service(build, TriggerSettings, database_url=url, fresh=True)

    async def readiness() -> dict[str, float]:
        client = service.client
        return {
            dependency: await metric_value(client, "nps_trigger_ready", dependency=dependency)
            for dependency in ("database", "kafka")
        }

    assert await readiness() == {"database": 1, "kafka": 1}
    password_postgres.stop()
    try:

        async def database_down() -> bool:
            return await readiness() == {"database": 0, "kafka": 1}

        await eventually(database_down, within=30)
        assert (await service.client.get("/readyz")).status_code == 503
    finally:
        password_postgres.start()

    async def database_back() -> bool:
        return await readiness() == {"database": 1, "kafka": 1}

    await eventually(database_back, within=30)
