"""The shared job runner: pacing, backoff, metrics per job, and a clean stop."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from libs.common.jobs import Job, JobRunner

SERVICE = "jobtest"


def sample(metric: str, job: str) -> float:
    value = REGISTRY.get_sample_value(f"nps_{SERVICE}_job_{metric}", {"job": job})
    return value or 0.0


class Scripted(Job):
    """Handles the counts it is given, one per cycle; an exception in the script is raised.
    ``done`` is set by the cycle that takes the script's last step."""

    def __init__(self, script: list[int | Exception], *, batch_size: int = 10, every: float = 60) -> None:
        self.name = f"scripted-{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.every = every
        self.script = script
        self.cycles = 0
        self.drained = False
        self.done = asyncio.Event()

    async def run_once(self) -> int:
        self.cycles += 1
        if not self.script:
            self.done.set()
            return 0
        step = self.script.pop(0)
        if not self.script:
            self.done.set()
        if isinstance(step, Exception):
            raise step
        return step

    async def drain(self) -> None:
        self.drained = True


async def run_until_done(runner: JobRunner, job: Scripted) -> asyncio.Task[None]:
    task = asyncio.create_task(runner.run(job))
    await asyncio.wait_for(job.done.wait(), 5)
    return task


async def test_a_full_batch_runs_again_at_once_and_a_short_one_waits_its_interval() -> None:
    job = Scripted([10, 10, 3, 1], batch_size=10, every=60)
    runner = JobRunner(SERVICE, [job])
    task = asyncio.create_task(runner.run(job))
    await asyncio.sleep(0.2)
    # Two full batches and the short one ran at once; the fourth cycle waits the 60 s interval.
    assert job.cycles == 3
    runner.wake(job.name)
    await asyncio.wait_for(job.done.wait(), 1)
    assert job.cycles == 4
    assert sample("items_total", job.name) == 24
    assert sample("runs_total", job.name) == 4
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert job.drained


async def test_errors_are_counted_and_backed_off_then_the_job_goes_on() -> None:
    job = Scripted([ConnectionRefusedError("database away"), RuntimeError("a bug"), 2], every=60)
    runner = JobRunner(SERVICE, [job])
    started = asyncio.get_running_loop().time()
    task = await run_until_done(runner, job)
    waited = asyncio.get_running_loop().time() - started
    # 0.5 s after the first error, 1 s after the second: backoff doubles.
    assert 1.4 <= waited < 3
    assert sample("errors_total", job.name) == 2
    assert sample("runs_total", job.name) == 3
    assert sample("items_total", job.name) == 2
    runner.stop()
    await asyncio.wait_for(task, 1)


async def test_stop_lets_the_cycle_in_progress_finish_then_drains() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    class Slow(Job):
        name = f"slow-{uuid.uuid4().hex[:8]}"
        every = 60

        async def run_once(self) -> int:
            await release.wait()
            finished.append("cycle")
            return 1

        async def drain(self) -> None:
            finished.append("drain")

    job = Slow()
    runner = JobRunner(SERVICE, [job])
    task = asyncio.create_task(runner.run(job))
    await asyncio.sleep(0.05)
    runner.stop()
    await asyncio.sleep(0.05)
    assert not task.done()
    release.set()
    await asyncio.wait_for(task, 1)
    assert finished == ["cycle", "drain"]


async def test_the_oldest_due_item_s_age_is_a_gauge_per_job() -> None:
    due = datetime.now(UTC) - timedelta(minutes=5)

    class Queue(Job):
        name = f"queue-{uuid.uuid4().hex[:8]}"
        every = 60

        async def run_once(self) -> int:
            return 0

        async def oldest_due(self) -> datetime | None:
            return due

    job = Queue()
    runner = JobRunner(SERVICE, [job])
    task = asyncio.create_task(runner.run(job))
    await asyncio.sleep(0.1)
    assert 299 <= sample("oldest_due_age_seconds", job.name) <= 310
    assert sample("duration_seconds_count", job.name) == 1
    runner.stop()
    await asyncio.wait_for(task, 1)


async def test_a_job_that_waits_first_does_not_run_before_its_delay() -> None:
    job = Scripted([1], every=60)
    job.first_run_after = 60
    runner = JobRunner(SERVICE, [job])
    task = asyncio.create_task(runner.run(job))
    await asyncio.sleep(0.1)
    assert job.cycles == 0
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert job.cycles == 0


async def test_prepare_is_retried_until_it_succeeds() -> None:
    attempts: list[int] = []

    class Preparing(Scripted):
        async def prepare(self) -> None:
            attempts.append(1)
            if len(attempts) < 2:
                raise ConnectionRefusedError("broker away")

    job = Preparing([1])
    runner = JobRunner(SERVICE, [job])
    task = await run_until_done(runner, job)
    assert len(attempts) == 2
    assert job.cycles == 1
    runner.stop()
    await asyncio.wait_for(task, 1)


def test_two_jobs_of_one_name_are_refused() -> None:
    first, second = Scripted([]), Scripted([])
    second.name = first.name
    try:
        JobRunner(SERVICE, [first, second])
    except ValueError as error:
        assert first.name in str(error)
    else:
        raise AssertionError("duplicate job names were accepted")


def test_waking_a_job_the_runner_does_not_run_does_nothing() -> None:
    # A unit of work may ask for a job that this runtime was built without (a test's survey alone).
    JobRunner(SERVICE, []).wake("survey-sender")
