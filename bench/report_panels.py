"""The report's panels over one tenant's 10 million answers: p50/p95 of 50 GETs per panel (target
p95 <= 50 ms), next to one SQL query over the raw ``reporting.responses`` computing the same
aggregate for the same range, in the same run.

    .venv/bin/python -m bench.report_panels                                   # 10 M answers
    BENCH_RESPONSES=200000 .venv/bin/python -m bench.report_panels            # a quick look
    BENCH_RESPONSES=1000000 BENCH_GETS=100 .venv/bin/python -m bench.report_panels

Set-up: Postgres, the broker and the reporting service (a process of its own, production
settings: ``bench.report_live.reporting_stack``); a tenant and its API key announced on
``nps.tenants``. The answers (2 years, 5 touchpoints, ~15 % with a comment, country / store /
category in the survey context's snapshot), their invitations and a case for each detractor go
straight into the tables with server-side SQL, and the rollups (``reporting.nps_cells``: day, ISO
week and month cells, everybody and each segment; ``reporting.funnel_days`` once it is in the
checkout) are built from them with SQL aggregates, exactly as the events would have left them:
see ``bench.report_seed``, where a new rollup adds its function. Then VACUUM ANALYZE. The
statements run side by side on one connection per core; the bench cluster gets max_wal_size 8 GB.

Measured: ``BENCH_GETS`` GETs per panel with the tenant's key, one after another after 5
unmeasured ones, over real HTTP; the range rotates over the last 7, 30, 90 and 365 days and the
last whole calendar year (the trend: always the last 365 days). A panel stops early once its
measured GETs took ``BENCH_PANEL_SECONDS`` (default 120 s; the table says how many were
measured), so a panel that scans millions of rows cannot hold the run for an hour. The CSV
export is timed to its first data row (the header line comes before any query), then the
download is dropped.

Baseline, same run, same rows, same ranges: asyncpg, a prepared statement over
``reporting.responses`` (``reporting.cases`` for the follow-ups) computing the panel's aggregate:
GROUP BY score for the scores (both periods in one scan), ``date_trunc('week')`` and score for the
trend, touchpoint, store and score for the segments, the feed's ``ORDER BY ... LIMIT 51`` for the
verbatims, touchpoint and score for the summary, counts and a percentile for the follow-ups, score
and whether the first repurchase came within 30 days for the repurchase rate, the export's first
batch (``LIMIT 2000``) for the CSV.

Last full run, 2026-12-02, 10 M answers, 2 cores, a quiet machine (load average 1.4-1.9): seeding
254 s (answers, invitations and 2.2 M cases; then the rollups). p50 / p95 (SQL p50): scores
4.9 / 5.5 ms (601 ms); trend 4.3 / 5.0 ms (1,615 ms); segments by store 16.8 / 39.6 ms (574 ms);
verbatims 5.4 / 7.1 ms (0.2 ms), with q and a group 6.1 / 8.4 ms (0.4 ms); summary 12.0 / 21.2 ms
(339 ms); followups 24.7 / 40.2 ms (75.6 ms); repurchase (days=30) 4.6 / 7.1 ms (273 ms); the
export's first row 10.2 / 12.7 ms (4.0 ms). Every panel's p95 is within 50 ms.

The follow-ups' percentiles read the day histogram (``0016_case_duration_days``) for the whole days
of a range's partial months; the run before it, same machine, same hour: followups 41.5 / 58.5 ms
(SQL 70.6 ms), the statement for the last 365 days 23 ms in EXPLAIN ANALYZE, 8 ms after.

Earlier, 2026-12-01, 10 M answers on a machine shared with other work (load average 9-13), before
the rollups and the covering index: summary 501 / 4,948 ms, followups 1,439 / 9,048 ms, segments
165 / 379 ms, the export's first row 454 / 723 ms (2,000 rows loaded and written as CSV before the
first byte).

``BENCH_SLOW_LOG=1`` logs each statement of 50 ms or more (the service's too) to the cluster's
``server.log`` and keeps its directory; ``BENCH_KEEP=1`` keeps it (10 M answers: ~15 GB with WAL)
to start it again and EXPLAIN.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import asyncpg
import httpx

from bench.alerting_stack import BenchTenant
from bench.desk_list import ms, quantile
from bench.report_live import ReportingStack, announce_tenant, reporting_stack
from bench.report_seed import ROLLUPS, seed_answers, seed_rollups, seeding_pool

RESPONSES = int(os.environ.get("BENCH_RESPONSES", "10000000"))
GETS = int(os.environ.get("BENCH_GETS", "50"))
PANEL_SECONDS = float(os.environ.get("BENCH_PANEL_SECONDS", "120"))
#: Keep the cluster's directory afterwards (10 M answers take ~6 GB), e.g. to EXPLAIN a panel's query.
KEEP = os.environ.get("BENCH_KEEP") == "1"
#: Log every statement the service makes that takes 50 ms or more to the cluster's server.log.
SLOW_LOG = os.environ.get("BENCH_SLOW_LOG") == "1"
WARM_UP = 5
TARGET_P95 = 0.050


@dataclass(frozen=True)
class Range:
    label: str
    since: date
    until: date

    @property
    def params(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, clock(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until, clock(), tzinfo=UTC)


def ranges(today: date) -> list[Range]:
    until = today + timedelta(days=1)
    found = [Range(f"{days} d", until - timedelta(days=days), until) for days in (7, 30, 90, 365)]
    year = today.year - 1
    return [*found, Range(str(year), date(year, 1, 1), date(year + 1, 1, 1))]


Args = Callable[[BenchTenant, Range], tuple[object, ...]]


def _in_range(tenant: BenchTenant, span: Range) -> tuple[object, ...]:
    return (tenant.tenant_id, span.start, span.end)


def _with_previous(tenant: BenchTenant, span: Range) -> tuple[object, ...]:
    previous = span.start - (span.end - span.start)
    return (tenant.tenant_id, previous, span.start, span.end)


@dataclass(frozen=True)
class Panel:
    name: str
    path: str
    query: dict[str, str]
    #: The raw SQL of the same aggregate, and its arguments for a range.
    baseline: str
    args: Args
    #: Only these ranges (the trend's 365 days); None for all of them.
    only: str | None = None
    #: Timed to the first data row of a streamed CSV rather than the whole answer.
    first_row: bool = False


_RAW = "FROM reporting.responses WHERE tenant_id = $1 AND responded_at >= $2 AND responded_at < $3"
_FEED_COLUMNS = (
    "response_id, touchpoint, score, comment, recommended, csat, effort, responded_at, locale, "
    "account_id, attributes"
)
_FEED = f"SELECT {_FEED_COLUMNS} {_RAW} AND comment <> ''"

PANELS = (
    Panel(
        "scores, compare=previous",
        "/v1/reports/scores",
        {"compare": "previous"},
        "SELECT responded_at >= $3 AS current, score, count(*) FROM reporting.responses "
        "WHERE tenant_id = $1 AND responded_at >= $2 AND responded_at < $4 GROUP BY 1, 2",
        _with_previous,
    ),
    Panel(
        "trend, bucket=week",
        "/v1/reports/trend",
        {"bucket": "week"},
        f"SELECT date_trunc('week', responded_at AT TIME ZONE 'UTC') AS week, score, count(*) {_RAW} "
        "GROUP BY 1, 2",
        _in_range,
        only="365 d",
    ),
    Panel(
        "segments, dimension=store",
        "/v1/reports/segments",
        {"dimension": "store"},
        f"SELECT touchpoint, btrim(attributes ->> 'store') AS store, score, count(*) {_RAW} GROUP BY 1, 2, 3",
        _in_range,
    ),
    Panel(
        "verbatims, first page",
        "/v1/reports/verbatims",
        {},
        f"{_FEED} ORDER BY responded_at DESC, response_id DESC LIMIT 51",
        _in_range,
    ),
    Panel(
        "verbatims, q=late, detractors",
        "/v1/reports/verbatims",
        {"q": "late", "category": "detractor"},
        f"{_FEED} AND score <= 6 AND comment ILIKE '%late%' ORDER BY responded_at DESC, response_id DESC "
        "LIMIT 51",
        _in_range,
    ),
    Panel(
        "summary",
        "/v1/reports/summary",
        {},
        f"SELECT touchpoint, score, count(*) {_RAW} GROUP BY 1, 2",
        _in_range,
    ),
    Panel(
        "followups",
        "/v1/reports/followups",
        {},
        "SELECT count(*), count(*) FILTER (WHERE breached), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_contact) FROM reporting.cases "
        "WHERE tenant_id = $1 AND coalesce(opened_at, updated_at) >= $2 "
        "AND coalesce(opened_at, updated_at) < $3",
        _in_range,
    ),
    Panel(
        "repurchase, days=30",
        "/v1/reports/repurchase",
        {"days": "30"},
        # ROLLUP: the total row too, so that a range with no answer 30 days old (the last 7 days)
        # still answers a row.
        "SELECT score, count(*), count(*) FILTER (WHERE repurchased_at <= responded_at + interval '30 days') "
        f"{_RAW} AND responded_at <= now() - interval '30 days' GROUP BY ROLLUP (score)",
        _in_range,
    ),
    Panel(
        "export responses.csv, 1st row",
        "/v1/reports/export/responses.csv",
        {},
        f"SELECT * {_RAW} ORDER BY responded_at, response_id LIMIT 2000",
        _in_range,
        first_row=True,
    ),
)


@dataclass(frozen=True)
class Timing:
    seconds: list[float]
    #: How many of the planned GETs (queries) were measured before the time budget ran out.
    planned: int

    @property
    def p50(self) -> float:
        return quantile(self.seconds, 0.5)

    @property
    def p95(self) -> float:
        return quantile(self.seconds, 0.95)


def _rotation(panel: Panel, spans: Sequence[Range]) -> list[Range]:
    chosen = [span for span in spans if panel.only is None or span.label == panel.only]
    return [chosen[number % len(chosen)] for number in range(WARM_UP + GETS)]


async def _get(client: httpx.AsyncClient, panel: Panel, span: Range) -> None:
    params = {**panel.query, **span.params}
    if panel.first_row:
        async with client.stream("GET", panel.path, params=params) as response:
            if response.status_code != 200:
                raise SystemExit(f"GET {panel.path} answered {response.status_code}")
            lines = 0
            async for _ in response.aiter_lines():
                lines += 1
                if lines == 2:
                    return
        raise SystemExit(f"GET {panel.path} over {span.label} exported no row")
    response = await client.get(panel.path, params=params)
    if response.status_code != 200:
        raise SystemExit(f"GET {panel.path} {params} answered {response.status_code}: {response.text[:300]}")


async def time_panel(
    stack: ReportingStack, tenant: BenchTenant, panel: Panel, spans: Sequence[Range]
) -> Timing:
    seconds: list[float] = []
    rotation = _rotation(panel, spans)
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=stack.url, headers=tenant.headers, timeout=600) as client:
        for number, span in enumerate(rotation):
            start = time.perf_counter()
            await _get(client, panel, span)
            if number < WARM_UP:
                began = time.perf_counter()
                continue
            seconds.append(time.perf_counter() - start)
            if time.perf_counter() - began > PANEL_SECONDS:
                break
    return Timing(seconds, GETS)


async def time_baseline(
    connection: asyncpg.Connection, tenant: BenchTenant, panel: Panel, spans: Sequence[Range]
) -> Timing:
    statement = await connection.prepare(panel.baseline)
    seconds: list[float] = []
    began = time.perf_counter()
    for number, span in enumerate(_rotation(panel, spans)):
        start = time.perf_counter()
        rows = await statement.fetch(*panel.args(tenant, span))
        if not rows:
            raise SystemExit(f"the baseline of {panel.name} over {span.label} found nothing")
        if number < WARM_UP:
            began = time.perf_counter()
            continue
        seconds.append(time.perf_counter() - start)
        if time.perf_counter() - began > PANEL_SECONDS:
            break
    return Timing(seconds, GETS)


async def check_scores(
    stack: ReportingStack, connection: asyncpg.Connection, tenant: BenchTenant, span: Range
) -> None:
    """The seeded cells and the raw rows agree: the scores panel counts what a COUNT(*) counts."""
    async with httpx.AsyncClient(base_url=stack.url, headers=tenant.headers, timeout=600) as client:
        shown = (await client.get("/v1/reports/scores", params=span.params)).json()["score"]["responses"]
    counted = await connection.fetchval(f"SELECT count(*) {_RAW}", *_in_range(tenant, span))
    if shown != counted:
        raise SystemExit(
            f"scores over {span.label}: the panel shows {shown} answers, the table holds {counted}"
        )


def _row(panel: Panel, project: Timing, baseline: Timing) -> str:
    measured = f"{len(project.seconds)}/{project.planned}"
    if len(baseline.seconds) != len(project.seconds):
        measured += f" ({len(baseline.seconds)} SQL)"
    verdict = "ok" if project.p95 <= TARGET_P95 else "SLOW"
    return (
        f"  {panel.name:<31} {ms(project.p50):>10} {ms(project.p95):>10} {ms(baseline.p50):>10} "
        f"{ms(baseline.p95):>10} {project.p50 / baseline.p50:>6.2f} {project.p95 / baseline.p95:>6.2f} "
        f"{measured:>10}  {verdict}"
    )


async def seed(stack: ReportingStack, tenant: BenchTenant) -> None:
    now = datetime.now(UTC)
    started = time.perf_counter()
    async with seeding_pool(stack.dsn) as pool:
        # A bench cluster: fewer checkpoints while millions of rows go in.
        await pool.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        await pool.execute("SELECT pg_reload_conf()")
        await seed_answers(pool, tenant.tenant_id, RESPONSES, now)
        answers = time.perf_counter() - started
        said = await seed_rollups(pool, tenant.tenant_id, now)
        cases = await pool.fetchval(
            "SELECT count(*) FROM reporting.cases WHERE tenant_id = $1", tenant.tenant_id
        )
    print(
        f"  seeded {RESPONSES:,} answers, as many invitations and {cases:,} cases in {answers:.1f} s; "
        f"rollups ({', '.join(ROLLUPS)}):"
    )
    for line in said:
        print(f"    {line}")
    print(f"  seeding took {time.perf_counter() - started:.1f} s in all")


async def main() -> None:
    print(
        f"report panels: {RESPONSES:,} answers of one tenant over 2 years, {GETS} GETs per panel, "
        f"{os.cpu_count()} cores"
    )
    async with reporting_stack("nps-bench-panels-") as stack:
        tenant = await announce_tenant(stack)
        connection = await asyncpg.connect(stack.dsn)
        try:
            await seed(stack, tenant)
            spans = ranges(datetime.now(UTC).date())
            await check_scores(stack, connection, tenant, spans[2])
            workdir = Path(await connection.fetchval("SHOW data_directory")).parent
            if SLOW_LOG:
                await connection.execute("ALTER SYSTEM SET log_min_duration_statement = '50ms'")
                await connection.execute("SELECT pg_reload_conf()")
                print(f"  statements of 50 ms or more: {workdir / 'pg' / 'server.log'}")
            print(f"  ranges: {', '.join(f'{s.label} ({s.since}..{s.until})' for s in spans)}")
            print(
                f"  {'panel':<31} {'p50':>10} {'p95':>10} {'SQL p50':>10} {'SQL p95':>10} {'x p50':>6} "
                f"{'x p95':>6} {'measured':>10}  p95<=50ms"
            )
            for panel in PANELS:
                project = await time_panel(stack, tenant, panel, spans)
                baseline = await time_baseline(connection, tenant, panel, spans)
                print(_row(panel, project, baseline), flush=True)
        finally:
            await connection.close()
    if KEEP or SLOW_LOG:
        print(f"  kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        "  p50/p95: the project's GET over HTTP; SQL: one prepared asyncpg query over the raw rows for "
        "the same range; x: project / SQL"
    )


if __name__ == "__main__":
    asyncio.run(main())
