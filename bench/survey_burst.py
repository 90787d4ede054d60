"""A burst at a new tenant's default sending rate: every invitation sent, none failed, in the time
the rate needs.

    make bench                                   # 5,000 invitations
    BENCH_BURST=20000 .venv/bin/python -m bench.survey_burst

``survey.requested.v1`` events for one tenant go onto ``nps.survey-requests`` at once; the survey
service (a real process, default settings, the tenant's default rate of 600 a minute with bursts
of 100) sends them to the SMTP sink (a real process). Reported: emails received, invitations
failed, and the time until the last one arrived. The baseline is the rate itself: the least time
any sender obeying it can take, ``(burst size - 100) / 10 per second``, and the ratio is that over
the time taken (1.0 is perfect pacing). A rate wait that spent a send attempt lost a third of a
burst of 200 before; here every one must arrive.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg

from bench.survey_stack import (
    announce_tenant,
    mail_count,
    produce,
    survey_requests,
    survey_stack,
    wait_for_mail,
)
from libs.common.topics import SURVEY_REQUESTS

BURST = int(os.environ.get("BENCH_BURST", "5000"))
#: A new tenant's sending rate (services/survey/schemas.py) and its burst (a tenth of a minute's).
DEFAULT_RATE_PER_MINUTE = 600


async def announce_default_tenant(bootstrap: str, url: str) -> uuid.UUID:
    """A new tenant whose settings are left untouched; returns once the survey answers its key."""
    tenant_id, settings = await announce_tenant(
        bootstrap, "burst-shop", lambda client, auth: client.get(f"{url}/v1/survey-settings", headers=auth)
    )
    assert settings.json()["send_rate_per_minute"] == DEFAULT_RATE_PER_MINUTE
    return tenant_id


async def statuses(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT status, count(*) FROM survey.invitations GROUP BY status")
    finally:
        await connection.close()
    return {row["status"]: row["count"] for row in rows}


async def main() -> None:
    # No settings of the service's or the tenant's changed: what a new tenant gets.
    async with survey_stack("nps-bench-burst-", {}) as stack:
        tenant_id = await announce_default_tenant(stack.bootstrap, stack.url)
        _, records = survey_requests(tenant_id, BURST)
        rate = DEFAULT_RATE_PER_MINUTE / 60
        least = max(0.0, (BURST - DEFAULT_RATE_PER_MINUTE / 6) / rate)
        print(
            f"survey burst: {BURST:,} invitations of one tenant at once, "
            f"its default rate {DEFAULT_RATE_PER_MINUTE}/min"
        )
        begin = time.perf_counter()
        await produce(stack.bootstrap, SURVEY_REQUESTS, records)
        arrived = await wait_for_mail(stack.mail_dir, BURST, within=least * 2 + 300)
        seconds = arrived - begin
        await asyncio.sleep(2)  # anything sent twice would show up in the count below
        counts = await statuses(stack.dsn)
        received = mail_count(stack.mail_dir)
        print(
            f"  project : {received:,} emails received, {counts.get('sent', 0):,} invitations sent, "
            f"{counts.get('failed', 0):,} failed, in {seconds:.1f} s"
        )
        print(f"  baseline: the rate's own minimum for {BURST:,}: {least:.1f} s")
        print(f"  ratio   : minimum / time taken = {least / seconds:.2f} (1.00 is perfect pacing)")
        if counts.get("failed", 0) or received != BURST:
            raise SystemExit("the burst lost invitations or sent some twice")


if __name__ == "__main__":
    asyncio.run(main())
