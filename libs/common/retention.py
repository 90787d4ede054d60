"""Each tenant's retention (``tenant.retention_set.v1``, kept on every service's copy of the tenant),
enforced by one job of the shared runner in every service that holds such data.

The job is the same everywhere: each cycle asks the service's repository to clear one batch of
rows past their tenant's retention (``apply_retention(now, limit)``: comments removed, invitations
anonymised, rows never deleted so that counts and scores stay whole) and commits. A full batch runs
again at once; the runner counts the rows in ``nps_<service>_job_items_total{job="privacy-retention"}``.
Each statement is ``FOR UPDATE SKIP LOCKED`` over an index by (tenant, time), so replicas share the
work and a row being answered or revised is left for the next cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import TextClause, text

from libs.common.db import Database
from libs.common.jobs import Job

#: The job's name in its metrics and logs, the same in every service.
RETENTION_JOB = "privacy-retention"
#: Rows one statement clears at most: one short transaction, a bounded lock set.
RETENTION_BATCH = 500
#: Between cycles that found less than a batch: retention is counted in months, an hour is plenty.
RETENTION_EVERY_SECONDS = 3600.0


def retention_update(
    *, schema: str, table: str, key: str, time_column: str, months: str, pending: str, changes: str
) -> TextClause:
    """One batch of one kind of row past its tenant's retention, changed in one statement.

    ``months`` names the tenant's column (``retention_comments_months``); ``pending`` is the
    condition of a row not yet cleared, the predicate of the partial (tenant, time) index the scan
    reads; ``changes`` the SET list. Per tenant with a retention, an index range of its old rows:
    tenants without one cost nothing. Bound parameters: ``:now`` and ``:limit``."""
    return text(
        f'UPDATE "{schema}".{table} AS target SET {changes} '
        f'FROM (SELECT due.{key} FROM "{schema}".tenants AS t CROSS JOIN LATERAL ('
        f'SELECT r.{key} FROM "{schema}".{table} AS r WHERE r.tenant_id = t.id AND {pending} '
        f"AND r.{time_column} < CAST(:now AS timestamptz) - make_interval(months => t.{months}) "
        "LIMIT :limit FOR UPDATE OF r SKIP LOCKED) AS due "
        f"WHERE t.{months} IS NOT NULL LIMIT :limit) AS batch WHERE target.{key} = batch.{key}"
    )


class RetentionRepository(Protocol):
    async def apply_retention(self, now: datetime, limit: int) -> int:
        """Clear at most ``limit`` rows past their tenant's retention; return how many."""
        ...


class RetentionJob(Job):
    name = RETENTION_JOB
    batch_size = RETENTION_BATCH

    def __init__(
        self,
        database: Database[Any],
        *,
        every: float = RETENTION_EVERY_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._clock = clock
        self.every = every

    async def run_once(self) -> int:
        async with self._database.uow() as uow:
            repository: RetentionRepository = uow.repository
            cleared = await repository.apply_retention(self._clock(), RETENTION_BATCH)
            await uow.commit()
        return cleared
