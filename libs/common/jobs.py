"""The one runner of background work: every timer-driven job of a service (the outbox relay, the
sender, reminders, the SLA check, notifications, cohort draws, and whatever comes next) is a
:class:`Job` that the :class:`JobRunner` runs in a loop of its own.

A job's cycle is claim -> work -> record: :func:`claim_work_record` claims due rows in one short
transaction and commits, does the slow work (SMTP, HTTP) with no transaction open, and records the
outcomes in another. No row lock is held across network I/O; a job that dies between claim and
record leaves its claim to expire, so its work is redone, never lost.

What the runner adds to every job, so no job writes it again:

* pacing: a job that did a full batch runs again at once; otherwise it waits its interval, or less
  if it is woken (the relay is woken by every commit that wrote events);
* backoff: an error is counted and logged (a warning for a database or broker that is away, with
  the traceback otherwise), and the job waits 0.5 s, doubling to 10 s, before it tries again;
* metrics per job: ``nps_<service>_job_runs_total``, ``_job_errors_total``, ``_job_items_total``,
  ``_job_duration_seconds``, ``_job_oldest_due_age_seconds`` (how long the oldest due item has
  waited: the number an on-call engineer alerts on when a queue stops moving) and
  ``_job_due_items`` (how many items are due now, for a job whose :meth:`Job.due` counts them);
* a clean stop: :meth:`JobRunner.stop` lets each job finish the cycle it is in, then runs the job's
  :meth:`Job.drain` (the relay publishes what is ready), and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from libs.common import tracing
from libs.common.db import Database, UnitOfWork
from libs.common.kafka import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")
O = TypeVar("O")  # noqa: E741
Repo = TypeVar("Repo")

#: The oldest-due age is a query; once every few seconds is plenty for a gauge scraped every 15 s.
OLDEST_DUE_EVERY_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0


@dataclass(frozen=True)
class Due:
    """What is due to a job now: when the oldest item became due (None: nothing is due, or not
    known) and how many items are due (None: not counted)."""

    oldest: datetime | None
    items: int | None = None


class Job(ABC):
    """One kind of background work. Subclasses implement :meth:`run_once`; the rest has defaults.

    ``batch_size``: a cycle that handled this many items runs again at once (there is probably
    more). ``every``: seconds to wait after a cycle that found less. ``first_run_after``: seconds
    to wait before the first cycle.
    """

    name: str = "job"
    batch_size: int = 1
    every: float = 1.0
    first_run_after: float = 0.0

    async def prepare(self) -> None:
        """Run once before the first cycle; retried with backoff until it succeeds."""
        return None

    @abstractmethod
    async def run_once(self) -> int:
        """One cycle; returns how many items it handled."""

    async def oldest_due(self) -> datetime | None:
        """When the oldest item that is due now became due (None: nothing is due, or not known)."""
        return None

    async def due(self) -> Due:
        """The oldest due item and how many are due. A job with a queue overrides this with one
        indexed query returning both; the default only asks :meth:`oldest_due`."""
        return Due(await self.oldest_due())

    async def drain(self) -> None:
        """Run once after the last cycle on a clean stop."""
        return None


class JobMetrics:
    def __init__(self, service: str) -> None:
        prefix = f"nps_{service}_job"
        self.runs = Counter(f"{prefix}_runs_total", "Cycles of a background job", ["job"])
        self.errors = Counter(f"{prefix}_errors_total", "Cycles of a background job that failed", ["job"])
        self.items = Counter(f"{prefix}_items_total", "Items a background job handled", ["job"])
        self.duration = Histogram(
            f"{prefix}_duration_seconds",
            "Time one cycle of a background job took",
            ["job"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.oldest_due_age = Gauge(
            f"{prefix}_oldest_due_age_seconds",
            "How long the oldest item due to a background job has waited (0 when none is due)",
            ["job"],
        )
        self.due_items = Gauge(
            f"{prefix}_due_items",
            "How many items are due to a background job now (its queue depth; jobs that count them)",
            ["job"],
        )


_metrics: dict[str, JobMetrics] = {}


def job_metrics(service: str) -> JobMetrics:
    """One set per process and service: Prometheus refuses to register a name twice."""
    if service not in _metrics:
        _metrics[service] = JobMetrics(service)
    return _metrics[service]


class JobRunner:
    """Runs a service's jobs, each in its own task, until :meth:`stop`."""

    def __init__(self, service: str, jobs: Sequence[Job]) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique, got {names}")
        self.jobs = list(jobs)
        self._metrics = job_metrics(service)
        self._stopping = asyncio.Event()
        self._wakes = {job.name: asyncio.Event() for job in jobs}
        self._backoffs: dict[str, float] = {}
        for job in jobs:
            # Every job shows on /metrics from the start, at zero, not only once it has run.
            for metric in (self._metrics.runs, self._metrics.errors, self._metrics.items):
                metric.labels(job.name)
            self._metrics.oldest_due_age.labels(job.name).set(0)

    def wake(self, name: str) -> None:
        """Run the job's next cycle now rather than after its interval (a job this runner does not
        run has nothing to wake)."""
        event = self._wakes.get(name)
        if event is not None:
            event.set()

    def stop(self) -> None:
        self._stopping.set()
        for event in self._wakes.values():
            event.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, job: Job) -> None:
        """The loop of one job: prepare, cycles until stopped, drain."""
        if job.first_run_after > 0 and await self._wait(job, job.first_run_after):
            return
        if not await self._until_done(job, job.prepare, "prepare"):
            return
        # On a clock of its own, not after each cycle: a job stuck in a cycle (a mail server that
        # never answers) or idle for a long interval still shows its queue growing older.
        watching = asyncio.create_task(self._watch_due(job), name=f"due-{job.name}")
        try:
            while not self._stopping.is_set():
                handled, failed = await self._cycle(job)
                if failed:
                    continue
                if handled < job.batch_size and await self._wait(job, job.every):
                    break
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        await self._until_done(job, job.drain, "drain", attempts=3)

    async def _watch_due(self, job: Job) -> None:
        while not self._stopping.is_set():
            await self._record_age(job)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), OLDEST_DUE_EVERY_SECONDS)

    async def _cycle(self, job: Job) -> tuple[int, bool]:
        """One cycle, measured; on an error, the backoff too. Returns (items, failed)."""
        metrics = self._metrics
        started = time.perf_counter()
        started_ns = time.time_ns()
        try:
            handled = await job.run_once()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            metrics.errors.labels(job.name).inc()
            tracing.record_span(f"job {job.name}", start_ns=started_ns, error=error)
            self._log_failure(job, "cycle", error)
            await self._backoff(job)
            return 0, True
        finally:
            metrics.runs.labels(job.name).inc()
            metrics.duration.labels(job.name).observe(time.perf_counter() - started)
        metrics.items.labels(job.name).inc(handled)
        if handled:
            # Only cycles that worked on something: idle polls would bury them.
            tracing.record_span(f"job {job.name}", start_ns=started_ns, attributes={"nps.job.items": handled})
        self._reset_backoff(job)
        return handled, False

    async def _record_age(self, job: Job) -> None:
        try:
            due = await job.due()
        except Exception as error:
            # A gauge is not worth failing the job for; the next check tries again.
            log.warning("job.age_unknown", extra={"job": job.name, "error": repr(error)[:300]})
            return
        oldest = due.oldest
        age = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        self._metrics.oldest_due_age.labels(job.name).set(age)
        if due.items is not None:
            self._metrics.due_items.labels(job.name).set(due.items)

    async def _until_done(
        self, job: Job, step: Callable[[], Awaitable[None]], what: str, *, attempts: int | None = None
    ) -> bool:
        """Run ``step`` until it succeeds (or ``attempts`` run out, or the runner stops first)."""
        tried = 0
        while True:
            try:
                await step()
                self._reset_backoff(job)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as error:
                tried += 1
                self._metrics.errors.labels(job.name).inc()
                self._log_failure(job, what, error)
                if attempts is not None and tried >= attempts:
                    return False
                if attempts is None and self._stopping.is_set():
                    return False
                await self._backoff(job)

    async def _backoff(self, job: Job) -> None:
        delay = self._backoffs.get(job.name, FIRST_BACKOFF_SECONDS)
        self._backoffs[job.name] = min(delay * 2, MAX_BACKOFF_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    def _reset_backoff(self, job: Job) -> None:
        self._backoffs.pop(job.name, None)

    async def _wait(self, job: Job, seconds: float) -> bool:
        """Wait ``seconds`` or until woken; True when the runner is stopping."""
        wake = self._wakes[job.name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
        wake.clear()
        return self._stopping.is_set()

    @staticmethod
    def _log_failure(job: Job, what: str, error: Exception) -> None:
        fields: dict[str, Any] = {"job": job.name, "step": what, "error": repr(error)[:300]}
        if is_transient(error):
            # The database, broker or mail server being away is the usual reason: keep trying.
            log.warning("job.retrying", extra=fields)
        else:
            log.error("job.failed", extra=fields, exc_info=error)


async def claim_work_record(
    database: Database[Repo],
    claim: Callable[[UnitOfWork[Repo]], Awaitable[Sequence[T]]],
    work: Callable[[Sequence[T]], Awaitable[O]],
    record: Callable[[UnitOfWork[Repo], O], Awaitable[None]],
) -> int:
    """The cycle of a job that talks to the outside world: ``claim`` due items in one short
    transaction and commit it, ``work`` on them with no transaction open, ``record`` the outcome in
    another short transaction. Returns how many items were claimed."""
    async with database.uow() as uow:
        items = await claim(uow)
        await uow.commit()
    if not items:
        return 0
    outcome = await work(items)
    async with database.uow() as uow:
        await record(uow, outcome)
        await uow.commit()
    return len(items)
