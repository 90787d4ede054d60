"""The cost of scoring's rollup per answer: the tallies, the cells and their ``nps.updated`` events.

    make bench                                      # 10,000 answers, 3 segments each
    BENCH_ANSWERS=50000 .venv/bin/python -m bench.scoring_rollup

``survey.responded.v1`` answers of 5 tenants, 3 touchpoints, each with 3 segments (``country`` of
10 values, ``store`` of 300, so the bound of 200 is reached, and ``plan`` of 3), go through
``record_responses`` on the real embedded Postgres in batches of the consumer's size (500), each in
one unit of work with its commit (the outbox included), as the consumer runs it. Each answer counts
in (1 + 3) x 3 cells, and each changed cell is one ``nps.updated`` event: twice, once as answers
arrive live (all answered today, so a batch's answers share their day, week and month cells) and
once as a backlog answered over the last 60 days (few answers share a cell: the worst case). The
statements per batch are counted by shape (an SQLAlchemy ``before_cursor_execute`` listener), so a
query made once per answer would show.

Baseline, same run, same answers, same batches: asyncpg inserting each batch into a plain table in
one ``INSERT ... SELECT FROM unnest(...)`` and committing, no rollup at all.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import re
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.common.db import Database, service_source
from libs.common.events import SURVEY_RESPONDED, Contract, Event, SurveyContext, SurveyResponded, new_event
from libs.common.migrations import upgrade
from libs.devstack.pg import EmbeddedPostgres
from services import scoring
from services.scoring.handlers import record_responses
from services.scoring.models import COMMON
from services.scoring.repository import ScoringRepository

ANSWERS = int(os.environ.get("BENCH_ANSWERS", "10000"))
BATCH = 500
TENANTS = 5
TOUCHPOINTS = ("webshop-purchase", "support-ticket", "store-visit")
MIGRATIONS = Path(scoring.__file__).parent / "migrations"

BASELINE_TABLE = (
    "CREATE TABLE bench_answers (tenant_id uuid NOT NULL, response_id uuid NOT NULL, "
    "touchpoint text NOT NULL, score smallint NOT NULL, responded_at timestamptz NOT NULL, "
    "context jsonb NOT NULL, "
    "PRIMARY KEY (tenant_id, response_id))"
)
BASELINE_INSERT = (
    "INSERT INTO bench_answers "
    "SELECT tenant_id, response_id, touchpoint, score, responded_at, context::jsonb "
    "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int2[], $5::timestamptz[], $6::text[]) "
    "AS batch(tenant_id, response_id, touchpoint, score, responded_at, context) ON CONFLICT DO NOTHING"
)


class StatementCounter:
    """Every statement the engine sends, by shape (its first words, parameters aside)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.shapes: collections.Counter[str] = collections.Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._count)

    def _count(
        self, _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool
    ) -> None:
        shape = re.sub(r"\s+", " ", statement).strip()
        shape = re.sub(r"\$\d+(::\w+)?", "?", shape)[:70]
        self.shapes[shape + (" [executemany]" if executemany else "")] += 1


def answers(now: datetime, days: int, tenants: list[uuid.UUID]) -> list[Event[Contract]]:
    rng = random.Random(days)
    events: list[Event[Contract]] = []
    for n in range(ANSWERS):
        customer = f"c-{n}"
        attributes = {
            "country": f"C{rng.randrange(10)}",
            "store": f"store-{rng.randrange(300)}",
            "plan": rng.choice(("free", "pro", "team")),
        }
        data = SurveyResponded(
            response_id=uuid.uuid4(),
            invitation_id=uuid.uuid4(),
            customer_id=customer,
            email=f"{customer}@bench.example",
            touchpoint=rng.choice(TOUCHPOINTS),
            score=rng.randrange(11),
            responded_at=now
            - timedelta(days=rng.randrange(days), seconds=rng.randrange(now.hour * 3600 + 1)),
            context=SurveyContext(attributes=attributes),
        )
        tenant = rng.choice(tenants)
        events.append(
            new_event(SURVEY_RESPONDED, tenant_id=str(tenant), data=data, subject=customer, source="/bench")
        )
    return events


def batches(events: list[Event[Contract]]) -> list[list[Event[Contract]]]:
    return [events[start : start + BATCH] for start in range(0, len(events), BATCH)]


async def project_run(database: Database[ScoringRepository], events: list[Event[Contract]]) -> float:
    started = time.perf_counter()
    for batch in batches(events):
        async with database.uow() as uow:
            await record_responses(batch, uow, now=datetime.now(UTC))
            await uow.commit()
    return time.perf_counter() - started


async def baseline_run(connection: asyncpg.Connection, events: list[Event[Contract]]) -> float:
    await connection.execute(BASELINE_TABLE)
    started = time.perf_counter()
    for batch in batches(events):
        columns: list[list[Any]] = [[], [], [], [], [], []]
        for each in batch:
            data = each.data
            assert isinstance(data, SurveyResponded) and data.context is not None
            row = (each.tenant, data.response_id, data.touchpoint, data.score, data.responded_at)
            for column, value in zip(columns, (*row, json.dumps(data.context.attributes)), strict=True):
                column.append(value)
        async with connection.transaction():
            await connection.execute(BASELINE_INSERT, *columns)
    return time.perf_counter() - started


async def counts(connection: asyncpg.Connection, tenants: list[uuid.UUID], events_before: int) -> str:
    cells = await connection.fetchval("SELECT count(*) FROM scoring.cells WHERE tenant_id = ANY($1)", tenants)
    events = await connection.fetchval("SELECT count(*) FROM scoring.outbox") - events_before
    return f"{cells:,} cells, {events:,} events ({events / ANSWERS:.1f} per answer)"


def per_answer(seconds: float) -> str:
    return f"{seconds / ANSWERS * 1e6:,.0f} us/answer ({ANSWERS / seconds:,.0f} answers/s, {seconds:.2f} s)"


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="nps-bench-rollup-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    dsn = postgres.url.replace("postgresql+asyncpg", "postgresql")
    database: Database[ScoringRepository] = Database(
        postgres.url, COMMON, repository=ScoringRepository, source=service_source("scoring")
    )
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, postgres.url)
        print(
            f"scoring rollup: {ANSWERS:,} answers of {TENANTS} tenants, {len(TOUCHPOINTS)} touchpoints, "
            f"3 segments each; batches of {BATCH}"
        )
        connection = await asyncpg.connect(dsn)
        counter = StatementCounter(database.engine)
        results = []
        for days, name in ((1, "live (answered today)"), (60, "backlog (over 60 days)")):
            tenants = [uuid.uuid4() for _ in range(TENANTS)]
            events = answers(datetime.now(UTC), days, tenants)
            events_before = await connection.fetchval("SELECT count(*) FROM scoring.outbox")
            seconds = await project_run(database, events)
            results.append(seconds)
            print(f"  project : {name}, record_responses + commit: {per_answer(seconds)}")
            print(f"            {await counts(connection, tenants, events_before)}")
        runs = 2 * len(batches(events))
        for shape, count in counter.shapes.most_common(8):
            print(f"            {count / runs:5.1f} per batch  {shape}")
        baseline = await baseline_run(connection, events)
        await connection.close()
        print(f"  baseline: asyncpg INSERT ... SELECT FROM unnest + commit: {per_answer(baseline)}")
        print(
            f"  ratio   : project / baseline = {results[0] / baseline:.0f}x live, "
            f"{results[1] / baseline:.0f}x backlog (time per answer)"
        )
    finally:
        await database.dispose()
        postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
