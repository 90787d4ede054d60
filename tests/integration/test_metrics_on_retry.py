"""A transaction the consumer retries counts its effects once: counters move when the unit of work
commits, never per attempt."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.scoring.config import ScoringSettings
from services.scoring.main import build
from tests.conftest import StartService, eventually, metric_value, provision_tenant
from tests.integration.test_scoring_nps import answer, nps_of, send

pytestmark = pytest.mark.integration


async def test_an_answer_whose_transaction_was_retried_is_counted_once(
    start_service: StartService, kafka_bootstrap: str, pg_url: str
) -> None:
    scoring = await start_service(build, ScoringSettings)
    tenant = await provision_tenant(scoring.runtime)
    touchpoint = f"retry-{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as holder, engine.connect() as admin:
            await holder.execution_options(isolation_level="READ COMMITTED")
            transaction = await holder.begin()
            # The answer's transaction counts the answer, then waits here for the tallies.
            await holder.execute(text("LOCK TABLE scoring.tallies IN EXCLUSIVE MODE"))
            await send(kafka_bootstrap, answer(tenant, touchpoint, 2, f"c-{uuid.uuid4().hex[:8]}"))

            async def waiting_backend() -> int | None:
                pid = await admin.scalar(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 'nps-scoring' "
                        "AND wait_event_type = 'Lock' AND query ILIKE '%tallies%' LIMIT 1"
                    )
                )
                return int(pid) if pid is not None else None

            # Its connection dies mid-transaction: a transient fault, rolled back and retried.
            pid = await eventually(waiting_backend, within=30)
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

            async def retried_and_waiting() -> bool:
                again = await waiting_backend()
                return again is not None and again != pid

            await eventually(retried_and_waiting, within=30)
            await transaction.rollback()
    finally:
        await engine.dispose()

    async def counted() -> bool:
        body = await nps_of(scoring, tenant)
        return bool(body["responses"] == 1)

    await eventually(counted, within=30)
    tallied = await metric_value(
        scoring.client, "nps_scoring_responses_total", touchpoint=touchpoint, category="detractor"
    )
    assert tallied == 1
