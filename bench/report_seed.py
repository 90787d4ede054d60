"""One tenant's answers, invitations and follow-up cases put straight into reporting's read model
with server-side SQL (``INSERT ... SELECT ... FROM generate_series``, in chunks), then the rollups
built from them as the events would have built them, for ``bench.report_panels``.

The answers (``seed_answers``) are spread evenly over the last ``DAYS`` days, oldest first; each
is a pure function of its number ``g`` (``hashint8extended(g, k)`` picks the k-th property), so
two runs of the same size seed the same rows:

- 5 touchpoints (checkout the most answered), a score mix of ~55 % promoters, ~23 % passives and
  ~22 % detractors (NPS ~33), ~15 % with a comment (a dozen phrases, some with "late");
- the survey context's snapshot as the read model stores it (``attributes``): ``country`` of 30,
  ``store`` of 100, ``category`` of 20 (one in ten answers in two categories, ``"a,b"``);
  no locale or account (so no ``language`` or ``account`` segment);
- ~30 % revised once with the follow-up questions (recommended, csat, effort);
- one invitation each in ``invitations_sent``, sent two hours before the answer (no funnel steps);
- a first repurchase (``repurchased_at``, as the purchases consumer leaves it) for ~45 % of the
  promoters, ~35 % of the passives and ~20 % of the detractors, 1 hour to 400 days after the
  answer (none beyond the 365 days a repurchase counts, none later than now); the purchases
  themselves are not kept (no panel reads them);
- a follow-up case in ``reporting.cases`` for every detractor (~22 % of the answers), in the
  states the desk leaves them: most resolved, some contacted, some open, ~10 % breached.

The rollups (``ROLLUPS``): one function per table, each one SQL statement over the seeded rows
(the cases' three rollups: migration 0012's backfill, one statement each).
``reporting.nps_cells`` holds exactly what scoring's ``nps.updated`` events would have left: per
touchpoint, UTC day / ISO week / calendar month, for everybody and each segment, s0..s10, the
version the number of answers counted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import asyncpg

from services.reporting.domain.repurchase import WINDOWS as REPURCHASE_WINDOWS

DAYS = 730
CHUNK = 500_000
TOUCHPOINTS = ("checkout", "delivery", "support-ticket", "returns", "onboarding")
#: How often each touchpoint is picked, out of 10.
TOUCHPOINT_PICKS = (0, 0, 0, 0, 1, 1, 2, 2, 3, 4)
COUNTRIES = (
    "DK", "SE", "NO", "FI", "DE", "NL", "BE", "FR", "ES", "PT", "IT", "AT", "CH", "PL", "CZ",
    "GB", "IE", "US", "CA", "MX", "BR", "AR", "AU", "NZ", "JP", "KR", "IN", "SG", "ZA", "EE",
)  # fmt: skip
STORES = 100
CATEGORIES = 20
#: Answers per mille at or below each score 0..9 (the rest are 10s): 22 % detractors, 23 % passives.
SCORE_CUMULATIVE = (30, 45, 65, 90, 120, 165, 220, 310, 450, 680)
COMMENTS = (
    "Delivery was late again",
    "Great service, thank you",
    "The checkout kept failing on my phone",
    "Friendly staff in the store",
    "Parcel arrived late and damaged",
    "Easy to find what I needed",
    "Too expensive for what you get",
    "Support answered within minutes",
    "Returns took far too long",
    "Love the new app",
    "Nobody answered the phone",
    "Fast and simple, as always",
)
AGENTS = ("Ada", "Bo", "Cai", "Dana", "Eli", "Fay", "Gus", "Hal")
ROOT_CAUSES = ("delivery", "product", "price", "staff", "website", "other")


def _pick(k: int, modulo: int) -> str:
    """A number 0..modulo-1 that is a fixed function of the answer number ``g`` and ``k``."""
    return f"((hashint8extended(g, {k}) & 2147483647) % {modulo})"


def _text_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]::text[]"


#: One chunk of answers [$4, $5] of $6 over [$2, $2 + $3 seconds), and their invitations and cases:
#: one statement (data-modifying CTEs), so the three tables are written in one pass.
_ANSWERS = f"""
WITH numbered AS (
    SELECT g,
           width_bucket({_pick(1, 1000)}::int, ARRAY{list(SCORE_CUMULATIVE)}) AS score,
           $2::timestamptz + make_interval(secs => (g - 1)::float8 * $3::float8 / $6::float8)
               AS responded_at,
           ({_text_array(TOUCHPOINTS)})[1 + (ARRAY{list(TOUCHPOINT_PICKS)})[1 + {_pick(2, 10)}]]
               AS touchpoint,
           {_pick(3, 100)} < 15 AS commented,
           {_pick(8, 10)} < 3 AS revised,
           {_pick(12, 100)} AS comes_back,
           make_interval(secs => 3600 + {_pick(13, 400 * 86400)}) AS after,
           lpad(to_hex(g), 12, '0') AS tail
    FROM generate_series($4::bigint, $5::bigint) AS g
), answers AS (
    INSERT INTO reporting.responses (tenant_id, response_id, invitation_id, touchpoint, score,
        responded_at, revision, comment, recommended, csat, effort, updated_at, customer_id, locale,
        account_id, attributes, spend_12m, repurchased_at)
    SELECT $1, ('00000000-0000-4000-8000-' || tail)::uuid, ('00000000-0000-4000-9000-' || tail)::uuid,
           touchpoint, score, responded_at,
           CASE WHEN revised THEN 2 ELSE 1 END,
           CASE WHEN commented THEN ({_text_array(COMMENTS)})[1 + {_pick(4, len(COMMENTS))}] END,
           CASE WHEN revised THEN score >= 7 END,
           CASE WHEN revised THEN 1 + least(4, score / 2) END,
           CASE WHEN revised THEN 7 - least(6, score / 2) END,
           CASE WHEN revised THEN responded_at + interval '10 minutes' END,
           'customer-' || {_pick(9, 2_000_000)},
           NULL, NULL,
           jsonb_build_object(
               'country', ({_text_array(COUNTRIES)})[1 + {_pick(5, len(COUNTRIES))}],
               'store', 'store-' || lpad((1 + {_pick(6, STORES)})::text, 3, '0'),
               'category', 'category-' || lpad((1 + {_pick(7, CATEGORIES)})::text, 2, '0')
                   || CASE WHEN {_pick(10, 10)} = 0
                      THEN ',category-' || lpad((1 + {_pick(11, CATEGORIES)})::text, 2, '0') ELSE '' END),
           NULL,
           CASE WHEN comes_back < CASE WHEN score >= 9 THEN 45 WHEN score >= 7 THEN 35 ELSE 20 END
                 AND after <= interval '365 days'
                 AND responded_at + after <= $2::timestamptz + make_interval(secs => $3::float8)
                THEN responded_at + after END
    FROM numbered
    RETURNING response_id, invitation_id, touchpoint, score, responded_at
), invitations AS (
    INSERT INTO reporting.invitations_sent (tenant_id, invitation_id, touchpoint, sent_at)
    SELECT $1, invitation_id, touchpoint, responded_at - interval '2 hours' FROM answers
)
INSERT INTO reporting.cases (tenant_id, case_id, touchpoint, status, breached, opened_at, due_at,
    updated_at, priority, assignee_name, team_name, contacted_at, seconds_to_contact,
    contact_within_sla, resolved_at, seconds_to_resolution, root_cause, recovery_score, response_id)
SELECT $1, case_id, touchpoint, status, contact > due, opened_at, opened_at + due,
       opened_at + CASE status WHEN 'open' THEN interval '0' WHEN 'contacted' THEN contact
                   ELSE contact + interval '1 day' END,
       CASE WHEN score <= 4 THEN 'urgent' ELSE 'normal' END,
       ({_text_array(AGENTS)})[1 + pick % {len(AGENTS)}],
       CASE WHEN pick % 2 = 0 THEN 'Customer care' ELSE 'Stores' END,
       CASE WHEN status <> 'open' THEN opened_at + contact END,
       CASE WHEN status <> 'open' THEN extract(epoch FROM contact) END,
       CASE WHEN status <> 'open' THEN contact <= due END,
       CASE WHEN status = 'resolved' THEN opened_at + contact + interval '1 day' END,
       CASE WHEN status = 'resolved' THEN extract(epoch FROM contact + interval '1 day') END,
       CASE WHEN status = 'resolved' THEN ({_text_array(ROOT_CAUSES)})[1 + pick % {len(ROOT_CAUSES)}] END,
       CASE WHEN status = 'resolved' AND pick % 3 = 0 THEN pick % 11 END,
       response_id
FROM (
    SELECT *, ('00000000-0000-4000-a000-' || right(response_id::text, 12))::uuid AS case_id,
           responded_at + interval '1 minute' AS opened_at,
           CASE WHEN score <= 4 THEN interval '4 hours' ELSE interval '24 hours' END AS due,
           make_interval(mins => (pick % 1800)::int) AS contact,
           CASE WHEN pick % 20 < 14 THEN 'resolved' WHEN pick % 20 < 17 THEN 'contacted' ELSE 'open' END
               AS status
    FROM (SELECT *, (hashtext(response_id::text) & 2147483647) AS pick FROM answers WHERE score <= 6) AS d
) AS detractors
"""


async def _tuned(connection: asyncpg.Connection) -> None:
    """A seeding connection: commits need not wait for the disk, aggregates stay in memory, and no
    Memoize node (it hashes each row's whole JSONB snapshot, never to hit, and triples the time)."""
    await connection.execute("SET synchronous_commit = off; SET work_mem = '256MB'; SET enable_memoize = off")


def seeding_pool(dsn: str) -> asyncpg.Pool:
    """One connection per core (at most 4): the statements are CPU-bound, and Postgres runs each on
    one core. Use as ``async with seeding_pool(dsn) as pool``."""
    workers = max(1, min(4, os.cpu_count() or 1))
    pool: asyncpg.Pool = asyncpg.create_pool(dsn, min_size=workers, max_size=workers, init=_tuned)
    return pool


async def run_side_by_side(pool: asyncpg.Pool, statements: Sequence[tuple[str, tuple[object, ...]]]) -> None:
    """Each (SQL, arguments) in a transaction of its own, as many at a time as the pool has connections."""
    waiting = list(reversed(statements))

    async def work() -> None:
        async with pool.acquire() as connection:
            while waiting:
                sql, args = waiting.pop()
                async with connection.transaction():
                    await connection.execute(sql, *args)

    await asyncio.gather(*(work() for _ in range(pool.get_max_size())))


async def seed_answers(pool: asyncpg.Pool, tenant_id: uuid.UUID, count: int, now: datetime) -> None:
    """``count`` answers over the last ``DAYS`` days, with their invitations and cases, then
    VACUUM ANALYZE (as autovacuum would have by then: the visibility map lets index-only scans skip
    the heap, and no autovacuum starts during the measurements)."""
    start = now - timedelta(days=DAYS)
    seconds = (now - start).total_seconds()
    await run_side_by_side(
        pool,
        [
            (_ANSWERS, (tenant_id, start, seconds, first, min(count, first + CHUNK - 1), float(count)))
            for first in range(1, count + 1, CHUNK)
        ],
    )
    async with pool.acquire() as connection:
        await connection.execute(
            "VACUUM ANALYZE reporting.responses, reporting.invitations_sent, reporting.cases"
        )


_COUNTS = ", ".join(f"count(*) FILTER (WHERE score = {score})" for score in range(11))
_SUMS = ", ".join(f"sum(s{score}) AS s{score}" for score in range(11))
_SCORES = ", ".join(f"s{score}" for score in range(11))
_VERSION = " + ".join(f"s{score}" for score in range(11))

#: The day cells of the answers given in [$2, $3): every answer's segments by the rule of spec 11
#: (the built-in dimensions the snapshot has): everybody, country, store and each of its first 5
#: categories, trimmed, empty ones absent; each counted in its UTC day. Days never straddle two
#: chunks, so the chunks can run side by side.
_NPS_DAY_CELLS = f"""
INSERT INTO reporting.nps_cells (tenant_id, touchpoint, dimension, value, bucket, start, {_SCORES},
    version, as_of)
SELECT $1, touchpoint, dimension, value, 'day', day, {_COUNTS}, count(*), $4
FROM (
    SELECT r.touchpoint, (r.responded_at AT TIME ZONE 'UTC')::date AS day, r.score, s.dimension, s.value
    FROM reporting.responses AS r
    CROSS JOIN LATERAL (
        SELECT '' AS dimension, '' AS value
        UNION ALL SELECT 'country', btrim(r.attributes ->> 'country')
        UNION ALL SELECT 'store', btrim(r.attributes ->> 'store')
        UNION ALL (
            SELECT 'category', btrim(part)
            FROM unnest(string_to_array(
                coalesce(r.attributes ->> 'category', r.attributes ->> 'categories'), ',')
            ) WITH ORDINALITY AS p(part, n)
            WHERE btrim(part) <> '' ORDER BY n LIMIT 5
        )
    ) AS s
    WHERE r.tenant_id = $1 AND r.responded_at >= $2 AND r.responded_at < $3
      AND (s.dimension = '' OR coalesce(s.value, '') <> '')
) AS segmented
GROUP BY touchpoint, dimension, value, day
ORDER BY touchpoint, dimension, value, day
"""

#: The ISO week and calendar month cells: the day cells summed. One statement.
_NPS_LONGER_CELLS = f"""
INSERT INTO reporting.nps_cells (tenant_id, touchpoint, dimension, value, bucket, start, {_SCORES},
    version, as_of)
SELECT $1, touchpoint, dimension, value, bucket, start, {_SCORES}, {_VERSION}, $2
FROM (
    SELECT touchpoint, dimension, value, 'week' AS bucket, date_trunc('week', start::timestamp)::date
           AS start, {_SUMS}
    FROM reporting.nps_cells WHERE tenant_id = $1 AND bucket = 'day'
    GROUP BY touchpoint, dimension, value, date_trunc('week', start::timestamp)::date
    UNION ALL
    SELECT touchpoint, dimension, value, 'month', date_trunc('month', start::timestamp)::date, {_SUMS}
    FROM reporting.nps_cells WHERE tenant_id = $1 AND bucket = 'day'
    GROUP BY touchpoint, dimension, value, date_trunc('month', start::timestamp)::date
) AS cells
ORDER BY touchpoint, dimension, value, bucket, start
"""

#: Day cells are built this many days of answers at a time.
CELL_CHUNK_DAYS = 61


async def seed_nps_cells(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: datetime) -> None:
    """What scoring's events would have left in ``reporting.nps_cells``: the day cells, a chunk of
    days per statement, side by side; then the weeks and months from them. The version of a cell
    is its number of answers (each counted once, none moved)."""
    first = datetime.combine(now.date() - timedelta(days=DAYS + 1), datetime.min.time(), tzinfo=UTC)
    chunks = []
    while first <= now:
        stop = first + timedelta(days=CELL_CHUNK_DAYS)
        chunks.append((_NPS_DAY_CELLS, (tenant_id, first, stop, now)))
        first = stop
    await run_side_by_side(pool, chunks)
    async with pool.acquire() as connection:
        await connection.execute(_NPS_LONGER_CELLS, tenant_id, now)


#: The funnel's days as the projection keeps them (the rule of ``0009_funnel_days``'s backfill, the
#: branch that adds the table): invitations sent, each step (a machine's open only while no person
#: opened), and those given up by reason, per touchpoint and UTC day.
_FUNNEL_DAYS = """
INSERT INTO reporting.funnel_days (tenant_id, touchpoint, day, step, reason, invitations)
SELECT $1, touchpoint, (sent_at AT TIME ZONE 'UTC')::date, 'sent', '', count(*)
FROM reporting.invitations_sent WHERE tenant_id = $1 GROUP BY 2, 3
UNION ALL
SELECT $1, s.touchpoint, (s.at AT TIME ZONE 'UTC')::date, s.step, '', count(*)
FROM reporting.invitation_steps AS s
WHERE s.tenant_id = $1 AND NOT (s.step = 'machine_opened' AND EXISTS (
    SELECT 1 FROM reporting.invitation_steps AS person
    WHERE person.tenant_id = s.tenant_id AND person.invitation_id = s.invitation_id
      AND person.step = 'opened'))
GROUP BY 2, 3, 4
UNION ALL
SELECT $1, touchpoint, (at AT TIME ZONE 'UTC')::date, 'failed_by_reason', reason, count(*)
FROM reporting.invitation_failures WHERE tenant_id = $1 GROUP BY 2, 3, 5
"""


async def seed_funnel_days(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: datetime) -> None:
    await pool.execute(_FUNNEL_DAYS, tenant_id)


#: What the answers' projection keeps (migration 0008's backfill, for one tenant).
_ANSWER_DAYS = """
INSERT INTO reporting.answer_days (tenant_id, touchpoint, day, score, answers, recommended_yes,
    recommended_no, csat_total, csat_answers, effort_total, effort_answers)
SELECT $1, touchpoint, (responded_at AT TIME ZONE 'UTC')::date, score, count(*),
    count(*) FILTER (WHERE recommended), count(*) FILTER (WHERE NOT recommended),
    coalesce(sum(csat), 0), count(csat), coalesce(sum(effort), 0), count(effort)
FROM reporting.responses WHERE tenant_id = $1 GROUP BY 2, 3, 4
"""


async def seed_answer_days(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: datetime) -> None:
    await pool.execute(_ANSWER_DAYS, tenant_id)


#: The repurchase rate's days (migration 0014's backfill, for one tenant).
_REPURCHASE_DAYS = f"""
INSERT INTO reporting.repurchase_days (tenant_id, touchpoint, day, score, answers,
    {", ".join(f"came_back_{days}" for days in REPURCHASE_WINDOWS)})
SELECT $1, touchpoint, (responded_at AT TIME ZONE 'UTC')::date, score, count(*),
    {
    ", ".join(
        f"count(*) FILTER (WHERE repurchased_at <= responded_at + interval '{days * 24} hours')"
        for days in REPURCHASE_WINDOWS
    )
}
FROM reporting.responses WHERE tenant_id = $1 GROUP BY 2, 3, 4
"""


async def seed_repurchase_days(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: datetime) -> None:
    await pool.execute(_REPURCHASE_DAYS, tenant_id)


def _migration(name: str) -> ModuleType:
    path = Path(__file__).parents[1] / f"services/reporting/migrations/versions/{name}.py"
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration


def _case_rollups() -> list[str]:
    """Migrations 0012's, 0015's and 0016's backfill (the rule the projection keeps, which a test
    checks), for one tenant: their statements, loaded from the migrations so the two cannot drift
    apart."""
    days, months = _migration("0012_case_days"), _migration("0015_case_months")
    duration_days = _migration("0016_case_duration_days")
    states = "status, breached, sla, contacted, owner, team"
    recoveries = "contact_speed, root_cause, recovery_score"
    tables = (
        ("case_days", f"touchpoint, day, {states}", days.CASE_DAYS_OF_CASES),
        ("case_months", f"touchpoint, month, {states}", months.CASE_MONTHS_OF_CASES),
        ("case_recovery_days", f"touchpoint, day, {recoveries}", days.CASE_RECOVERY_DAYS_OF_CASES),
        ("case_recovery_months", f"touchpoint, month, {recoveries}", months.CASE_RECOVERY_MONTHS_OF_CASES),
        ("case_duration_months", "touchpoint, month, metric, bucket", days.CASE_DURATION_MONTHS_OF_CASES),
        ("case_duration_days", "day, touchpoint, metric, bucket", duration_days.CASE_DURATION_DAYS_OF_CASES),
    )
    return [
        f"INSERT INTO reporting.{table} (tenant_id, {keys}, cases) SELECT * FROM ({of_cases}) AS r"
        f"(tenant_id, {keys}, cases) WHERE tenant_id = $1"
        for table, keys, of_cases in tables
    ]


async def seed_case_days(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: datetime) -> None:
    """The case rollups (``case_days``, ``case_months``, ``case_recovery_days``,
    ``case_recovery_months``, ``case_duration_months``, ``case_duration_days``), side by side; each
    is vacuumed here, the first again by :func:`seed_rollups`."""
    statements = _case_rollups()
    await run_side_by_side(pool, [(sql, (tenant_id,)) for sql in statements])
    async with pool.acquire() as connection:
        await connection.execute(
            "VACUUM ANALYZE reporting.case_months, reporting.case_recovery_days, "
            "reporting.case_recovery_months, reporting.case_duration_months, reporting.case_duration_days"
        )


Rollup = Callable[[asyncpg.Pool, uuid.UUID, datetime], Awaitable[None]]

#: Each rollup table the panels read, and the function that fills it from the seeded rows. A new
#: rollup (``reporting.answer_days``, ``reporting.funnel_days``, ...) adds its function here; a
#: table listed whose migration is not in this checkout is skipped.
ROLLUPS: dict[str, Rollup] = {
    "reporting.nps_cells": seed_nps_cells,
    "reporting.funnel_days": seed_funnel_days,
    "reporting.answer_days": seed_answer_days,
    "reporting.repurchase_days": seed_repurchase_days,
    "reporting.case_days": seed_case_days,
}
#: Rollups known to be on their way: if one exists without a seeder, the bench says so.
EXPECTED_ROLLUPS = (
    "reporting.answer_days",
    "reporting.funnel_days",
    "reporting.repurchase_days",
    "reporting.case_days",
)


async def seed_rollups(pool: asyncpg.Pool, tenant_id: uuid.UUID, now: datetime) -> list[str]:
    """Fill every rollup table of ``ROLLUPS`` that exists, then VACUUM ANALYZE it; returns lines
    saying what took how long."""
    said = []
    for table, seed in ROLLUPS.items():
        if await pool.fetchval("SELECT to_regclass($1)", table) is None:
            said.append(f"{table}: not in this checkout, skipped")
            continue
        started = time.perf_counter()
        await seed(pool, tenant_id, now)
        await pool.execute(f"VACUUM ANALYZE {table}")
        rows = await pool.fetchval(f"SELECT count(*) FROM {table}")
        said.append(f"{table}: {rows:,} rows in {time.perf_counter() - started:.1f} s")
    for table in EXPECTED_ROLLUPS:
        if table not in ROLLUPS and await pool.fetchval("SELECT to_regclass($1)", table) is not None:
            said.append(f"{table}: exists but has no seeder in bench.report_seed.ROLLUPS: left EMPTY")
    return said
