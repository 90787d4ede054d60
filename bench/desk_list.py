"""The case desk's list over one tenant's 100,000 open cases: 200 GETs of one URL, p50/p95, next to
the raw SQL of the same list on the same data.

    .venv/bin/python -m bench.desk_list '/v1/cases?limit=50'     # what make bench runs, for now
    .venv/bin/python -m bench.desk_list                          # /desk?tab=all: needs the TODO below
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
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from bench.alerting_seed import add_cases, add_desks
from bench.alerting_stack import AlertingStack, BenchTenant, alerting_stack, announce_tenant

CASES = int(os.environ.get("BENCH_CASES", "100000"))
GETS = int(os.environ.get("BENCH_GETS", "200"))
WARM_UP = 10
DEFAULT_URL = "/desk?tab=all"

#: What a list row shows (the API's CaseView; the desk's rows show no more).
COLUMNS = (
    "id, customer_id, touchpoint, score, comment, recommended, csat, effort, status, resolution, "
    "owner_email, note, opened_at, due_at, contacted_at, resolved_at, breached_at"
)


def signed_in_cookie(stack: AlertingStack, tenant: BenchTenant) -> dict[str, str]:
    """TODO(lead, once the desk page is merged): sign a person of ``tenant`` in to the desk and
    return the request headers that carry the session, e.g. ``{"Cookie": "nps_desk=..."}``: make
    a user (``bench.alerting_seed.add_desks`` makes an agent, a team lead and a CX manager per
    tenant; the list's ``tab=all`` wants a role that sees every case), then either follow the
    magic-link flow over HTTP (POST the sign-in form, read the link from the SMTP sink under
    ``stack.workdir / "mail"``, GET it, keep the ``Set-Cookie``) or insert a session row the way the
    desk's own tests do."""
    raise NotImplementedError(
        f"signing in to the desk is not written yet (tenant {tenant.tenant_id}, {stack.url}); "
        "run with a /v1/ URL, e.g. '/v1/cases?limit=50'"
    )


def list_order(path: str) -> tuple[str, int]:
    """The ORDER BY and LIMIT of the list the URL shows."""
    query = parse_qs(urlsplit(path).query)
    limit = int(query.get("limit", ["50"])[0])
    if path.startswith("/v1/cases"):
        return "opened_at DESC, id DESC", limit
    return "due_at, id", limit


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
        headers = tenant.headers if path.startswith("/v1/") else signed_in_cookie(stack, tenant)
        connection = await asyncpg.connect(stack.dsn)
        try:
            started = time.perf_counter()
            now = datetime.now(UTC)
            desks = await add_desks(connection, [tenant.tenant_id], now)
            await add_cases(connection, desks, CASES, now)
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
