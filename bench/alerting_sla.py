"""The SLA loop over 100,000 open cases, all due: time per pass of the SLA job's clock (batches of
1,000), cases per second, and a pass when nothing is due.

    make bench                                   # 100,000 cases of 50 tenants
    BENCH_CASES=20000 .venv/bin/python -m bench.alerting_sla

The cases go straight into ``alerting.followup_cases`` with COPY (``bench.alerting_seed``): half
urgent, opened over the last 7 days, each with its next check in the last hour and no step taken
yet, so every pass takes each case's missed steps (reminders, breaches, escalations to the team
lead and the CX manager, resolution reminders and breaches) as the job would after an outage. A
pass is what ``SlaCheck.run_once`` does first: one unit of work, ``run_clock``, commit. Each pass's
SQL statements are counted (an SQLAlchemy ``before_cursor_execute`` listener), by shape, so that a
query made once per case rather than once per batch shows.

Baseline, same run, same rows, same batches: asyncpg ``SELECT id ... ORDER BY next_check_at LIMIT
1000 FOR UPDATE SKIP LOCKED`` + ``UPDATE ... WHERE id = ANY($1)``, no domain logic.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.alerting_seed import add_cases, add_desks, add_tenants, migrate
from libs.common.db import Database, service_source
from libs.devstack.pg import EmbeddedPostgres
from services.alerting import handlers
from services.alerting.models import COMMON
from services.alerting.repository import AlertingRepository

CASES = int(os.environ.get("BENCH_CASES", "100000"))
TENANTS = int(os.environ.get("BENCH_TENANTS", "50"))
BATCH = handlers.BREACH_BATCH
IDLE_PASSES = 20

DUE = "SELECT count(*) FROM alerting.followup_cases WHERE next_check_at IS NOT NULL AND next_check_at <= $1"
CLAIM = (
    "SELECT id FROM alerting.followup_cases WHERE next_check_at IS NOT NULL AND next_check_at <= $1 "
    f"ORDER BY next_check_at LIMIT {BATCH} FOR UPDATE SKIP LOCKED"
)
TAKE = "UPDATE alerting.followup_cases SET next_check_at = NULL, updated_at = $2 WHERE id = ANY($1::uuid[])"


class StatementCounter:
    """Every statement the engine sends, by shape (its first words, literals and parameters aside)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.shapes: collections.Counter[str] = collections.Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._count)

    def _count(
        self, _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool
    ) -> None:
        shape = re.sub(r"\s+", " ", statement).strip()
        shape = re.sub(r"\$\d+(::\w+)?", "?", shape)[:90]
        self.shapes[shape + (" [executemany]" if executemany else "")] += 1

    def take(self) -> collections.Counter[str]:
        shapes, self.shapes = self.shapes, collections.Counter()
        return shapes


@dataclass(frozen=True)
class Pass:
    seconds: float
    cases: int
    steps: int
    statements: collections.Counter[str]


async def due_count(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval(DUE, datetime.now(UTC))
    return count


async def clock_pass(
    database: Database[AlertingRepository], counter: StatementCounter
) -> tuple[float, int, collections.Counter[str]]:
    counter.take()
    begin = time.perf_counter()
    async with database.uow() as uow:
        steps = await handlers.run_clock(uow, datetime.now(UTC), limit=BATCH)
        await uow.commit()
    return time.perf_counter() - begin, steps, counter.take()


async def project_run(
    database: Database[AlertingRepository], connection: asyncpg.Connection
) -> tuple[list[Pass], list[Pass]]:
    counter = StatementCounter(database.engine)
    passes: list[Pass] = []
    due = await due_count(connection)
    while due:
        seconds, steps, statements = await clock_pass(database, counter)
        left = await due_count(connection)
        passes.append(Pass(seconds, due - left, steps, statements))
        if left >= due:
            raise SystemExit(f"a pass of the SLA clock took no case ({left:,} due)")
        due = left
    idle = []
    for _ in range(IDLE_PASSES):
        seconds, steps, statements = await clock_pass(database, counter)
        idle.append(Pass(seconds, 0, steps, statements))
    return passes, idle


async def baseline_run(connection: asyncpg.Connection) -> tuple[list[Pass], list[Pass]]:
    passes: list[Pass] = []
    idle: list[Pass] = []
    while len(idle) < IDLE_PASSES:
        begin = time.perf_counter()
        now = datetime.now(UTC)
        async with connection.transaction():
            rows = await connection.fetch(CLAIM, now)
            if rows:
                await connection.execute(TAKE, [row["id"] for row in rows], now)
        seconds = time.perf_counter() - begin
        (passes if rows else idle).append(Pass(seconds, len(rows), 0, collections.Counter()))
    return passes, idle


async def seed(connection: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    tenant_ids = [uuid.uuid4() for _ in range(TENANTS)]
    await add_tenants(connection, tenant_ids, now)
    desks = await add_desks(connection, tenant_ids, now)
    await add_cases(connection, desks, CASES, now)
    # The next checks as seeded, to put back for the baseline.
    await connection.execute(
        "CREATE TABLE bench_seed AS SELECT id, next_check_at FROM alerting.followup_cases"
    )
    await connection.execute("VACUUM ANALYZE alerting.followup_cases")


async def restore(connection: asyncpg.Connection) -> None:
    await connection.execute(
        "UPDATE alerting.followup_cases AS c SET next_check_at = s.next_check_at FROM bench_seed AS s "
        "WHERE c.id = s.id"
    )
    await connection.execute("VACUUM ANALYZE alerting.followup_cases")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def summary(passes: list[Pass]) -> tuple[float, float, float]:
    """p50 seconds per pass, cases per second, total seconds."""
    total = sum(each.seconds for each in passes)
    return (
        statistics.median(each.seconds for each in passes),
        sum(each.cases for each in passes) / total,
        total,
    )


def statement_report(passes: list[Pass]) -> list[str]:
    per_pass = [sum(each.statements.values()) for each in passes]
    shapes: collections.Counter[str] = collections.Counter()
    for each in passes:
        shapes.update(each.statements)
    lines = [
        f"  queries : {statistics.median(per_pass):.0f} statements per pass (p50; min {min(per_pass)}, "
        f"max {max(per_pass)}), by shape, mean per pass:"
    ]
    for shape, count in shapes.most_common(8):
        lines.append(f"      {count / len(passes):7.1f}  {shape}")
    return lines


async def explain_idle(connection: asyncpg.Connection) -> str:
    plan = await connection.fetch("EXPLAIN " + CLAIM, datetime.now(UTC))
    scans = [row[0].strip(" ->") for row in plan if "Scan" in row[0]]
    return "; ".join(scans)


async def step_mix(connection: asyncpg.Connection) -> str:
    rows = await connection.fetch(
        "SELECT kind, count(*) FROM alerting.case_events GROUP BY kind ORDER BY count(*) DESC"
    )
    notified = await connection.fetchval("SELECT count(*) FROM alerting.notifications")
    emitted = await connection.fetchval("SELECT count(*) FROM alerting.outbox")
    kinds = ", ".join(f"{row['kind']} {row['count']:,}" for row in rows)
    return f"{kinds}; {notified:,} notifications queued, {emitted:,} events in the outbox"


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="nps-bench-sla-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    dsn = postgres.url.replace("postgresql+asyncpg", "postgresql")
    database: Database[AlertingRepository] = Database(
        postgres.url, COMMON, repository=AlertingRepository, source=service_source("alerting")
    )
    try:
        await migrate(postgres.url)
        connection = await asyncpg.connect(dsn)
        print(
            f"alerting SLA loop: {CASES:,} open cases of {TENANTS} tenants, half urgent, opened over the "
            f"last 7 days, all due (next check in the last hour, no step taken yet); batches of {BATCH:,}"
        )
        started = time.perf_counter()
        await seed(connection)
        seeded = time.perf_counter() - started
        print(f"  (seeded in {seeded:.1f} s; plan when nothing is due: {await explain_idle(connection)})")
        passes, idle = await project_run(database, connection)
        print(f"  steps   : {await step_mix(connection)}")
        gauge = time.perf_counter()
        async with database.uow() as uow:
            await handlers.refresh_open_cases(uow)
        gauge_seconds = time.perf_counter() - gauge
        await restore(connection)
        base_passes, base_idle = await baseline_run(connection)
        await connection.close()
        p50, rate, total = summary(passes)
        base_p50, base_rate, base_total = summary(base_passes)
        idle_p50 = statistics.median(each.seconds for each in idle)
        base_idle_p50 = statistics.median(each.seconds for each in base_idle)
        print(
            f"  project : run_clock + commit, {len(passes)} passes: p50 {ms(p50)} per pass, "
            f"{rate:,.0f} cases/s, {total:.1f} s in all; nothing due: p50 {ms(idle_p50)} per pass"
        )
        print(f"            (then the open-cases gauge, once per job run: {ms(gauge_seconds)})")
        for line in statement_report(passes):
            print(line)
        idle_statements = statistics.median(sum(each.statements.values()) for each in idle)
        print(f"  idle    : {idle_statements:.0f} statements per pass when nothing is due")
        print(
            f"  baseline: asyncpg SELECT ... FOR UPDATE SKIP LOCKED + UPDATE ... WHERE id = ANY, "
            f"{len(base_passes)} passes: p50 {ms(base_p50)} per pass, {base_rate:,.0f} cases/s, "
            f"{base_total:.1f} s in all; nothing due: p50 {ms(base_idle_p50)} per pass"
        )
        print(
            f"  ratio   : project / baseline = {rate / base_rate:.2f} (cases/s); "
            f"nothing due: {idle_p50 / base_idle_p50:.1f}x the baseline's time"
        )
    finally:
        await database.dispose()
        postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
