"""The case desk's list over one tenant's 100,000 open cases: 200 GETs of one URL, p50/p95, next to
the raw SQL of the same list on the same data.

    .venv/bin/python -m bench.desk_list                          # /desk?tab=all, as a CX manager
    .venv/bin/python -m bench.desk_list '/v1/cases?limit=50'     # the REST list (make bench runs both)
    BENCH_CASES=20000 BENCH_GETS=500 .venv/bin/python -m bench.desk_list '/v1/cases?limit=50'

The alerting service is a real process (``bench.alerting_stack``); the cases go straight into its
table with COPY (``bench.alerting_seed``: one team of four agents, half the cases urgent, opened
over the last 7 days). A ``/v1/...`` URL is called with the tenant's API key; any other (the desk's
pages) with the cookie of a signed-in person, ``signed_in_cookie``. The GETs go one after another,
after 10 unmeasured ones. The SLA job is kept from running meanwhile (its first check is at start,
before the cases exist), so only the list is measured.

Baseline, same run, same rows: asyncpg ``SELECT <the listed columns> ... WHERE tenant_id = $1 ORDER
BY <the list's order> LIMIT <its limit>``, as a prepared statement. The desk lists by due time; the
API (``GET /v1/cases``) newest answer first.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from bench.alerting_seed import add_cases, add_desks
from bench.alerting_stack import BenchTenant, alerting_stack, announce_tenant
from libs.common.sessions import COOKIE, new_session

CASES = int(os.environ.get("BENCH_CASES", "100000"))
GETS = int(os.environ.get("BENCH_GETS", "200"))
WARM_UP = 10
DEFAULT_URL = "/desk?tab=all"

#: What a list row shows (the API's CaseView; the desk's rows show no more).
COLUMNS = (
    "id, customer_id, touchpoint, score, comment, recommended, csat, effort, status, resolution, "
    "owner_email, note, opened_at, due_at, contacted_at, resolved_at, breached_at"
)


async def signed_in_cookie(connection: asyncpg.Connection, tenant: BenchTenant) -> dict[str, str]:
    """The request headers of the tenant's CX manager signed in to the desk (who sees every case, as
    ``tab=all`` wants): a session stored as the magic-link sign-in stores it, only its hash."""
    manager = await connection.fetchval(
        "SELECT id FROM alerting.users WHERE tenant_id = $1 AND role = 'cx_manager'", tenant.tenant_id
    )
    session = new_session()
    now = datetime.now(UTC)
    await connection.execute(
        "INSERT INTO alerting.web_sessions (id, token_hash, tenant_id, user_id, role, name, created_at, "
        "expires_at) VALUES ($1, $2, $3, $4, 'cx_manager', 'CX Manager', $5, $6)",
        session.session_id,
        session.token_hash,
        tenant.tenant_id,
        manager,
        now,
        now + timedelta(hours=1),
    )
    return {"Cookie": f"{COOKIE}={session.token}"}


def list_order(path: str) -> tuple[str, int]:
    """The ORDER BY and LIMIT of the list the URL shows."""
    query = parse_qs(urlsplit(path).query)
    # The desk shows 50 a page; both list soonest due first.
    return "due_at, id", int(query.get("limit", ["50"])[0])


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def time_gets(url: str, path: str, headers: dict[str, str], limit: int) -> list[float]:
    seconds = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        for number in range(WARM_UP + GETS):
            begin = time.perf_counter()
            response = await client.get(path)
            elapsed = time.perf_counter() - begin
            if response.status_code != 200:
                raise SystemExit(f"GET {path} answered {response.status_code}: {response.text[:300]}")
            if number == 0 and path.startswith("/v1/cases") and len(response.json()["cases"]) != limit:
                raise SystemExit(f"GET {path} listed {len(response.json()['cases'])} cases, not {limit}")
            if number >= WARM_UP:
                seconds.append(elapsed)
    return seconds


async def time_sql(
    connection: asyncpg.Connection, tenant: BenchTenant, order: str, limit: int
) -> list[float]:
    statement = await connection.prepare(
        f"SELECT {COLUMNS} FROM alerting.followup_cases WHERE tenant_id = $1 ORDER BY {order} LIMIT {limit}"
    )
    seconds = []
    for number in range(WARM_UP + GETS):
        begin = time.perf_counter()
        rows = await statement.fetch(tenant.tenant_id)
        elapsed = time.perf_counter() - begin
        if len(rows) != limit:
            raise SystemExit(f"the baseline listed {len(rows)} cases, not {limit}")
        if number >= WARM_UP:
            seconds.append(elapsed)
    return seconds


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def main(path: str) -> None:
    order, limit = list_order(path)
    print(f"desk list: GET {path} x {GETS}, one tenant with {CASES:,} open cases")
    # SLA_CHECK_SECONDS: the job's first check runs at start, before the cases exist; no other.
    async with alerting_stack("nps-bench-desk-", {"SLA_CHECK_SECONDS": "86400"}) as stack:
        tenant = await announce_tenant(stack, "desk-shop")
        connection = await asyncpg.connect(stack.dsn)
        try:
            started = time.perf_counter()
            now = datetime.now(UTC)
            desks = await add_desks(connection, [tenant.tenant_id], now)
            await add_cases(connection, desks, CASES, now)
            headers = (
                tenant.headers if path.startswith("/v1/") else await signed_in_cookie(connection, tenant)
            )
            print(f"  (seeded in {time.perf_counter() - started:.1f} s)")
            project = await time_gets(stack.url, path, headers, limit)
            baseline = await time_sql(connection, tenant, order, limit)
        finally:
            await connection.close()
    print(
        f"  project : GET {path}, one after another: "
        f"p50 {ms(quantile(project, 0.5))}, p95 {ms(quantile(project, 0.95))}"
    )
    print(
        f"  baseline: asyncpg SELECT ... ORDER BY {order} LIMIT {limit} (prepared): "
        f"p50 {ms(quantile(baseline, 0.5))}, p95 {ms(quantile(baseline, 0.95))}"
    )
    print(
        f"  ratio   : project / baseline = {quantile(project, 0.5) / quantile(baseline, 0.5):.1f} at p50, "
        f"{quantile(project, 0.95) / quantile(baseline, 0.95):.1f} at p95"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL))
