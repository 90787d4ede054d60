"""The composition root every service shares: settings -> database, producer, consumers and the
job runner (the outbox relay and the service's background jobs). The FastAPI app is assembled over
a :class:`Runtime` by :mod:`libs.common.app`, where ``python -m services.<name>`` ends up; tests
build the same :class:`Runtime` in-process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.config import ServiceSettings
from libs.common.db import CommonTables, Database, no_repository, service_source
from libs.common.jobs import Job, JobRunner
from libs.common.kafka import ConsumerRunner, ConsumerSpec, make_producer
from libs.common.lag import ConsumerLagJob, Group
from libs.common.metrics import ServiceMetrics, metrics_for
from libs.common.migrations import upgrade
from libs.common.outbox import OutboxRelay
from libs.common.tenancy import ApiKeyVerifier

log = logging.getLogger(__name__)

#: Builds one of a service's background jobs once the runtime has its database and producer.
JobFactory = Callable[["Runtime"], Job]


@dataclass
class ServiceDefinition:
    """What makes one service itself; everything else is shared."""

    name: str
    title: str
    description: str
    metadata: MetaData
    tables: CommonTables
    migrations: Path
    routers: Sequence[APIRouter] = ()
    consumers: Sequence[ConsumerSpec] = ()
    jobs: Sequence[JobFactory] = ()
    #: Builds the service's repository over a unit of work's session (``uow.repository``).
    repository: Callable[[AsyncSession], Any] = no_repository
    #: The service's copy of people's sessions (``libs/common/sessions.py``), if it has pages.
    sessions: Table | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class Runtime:
    def __init__(self, definition: ServiceDefinition, settings: ServiceSettings) -> None:
        self.definition = definition
        self.settings = settings
        self.metrics: ServiceMetrics = metrics_for(definition.name)
        self.database: Database[Any] = Database(
            settings.database_url,
            definition.tables,
            pool_size=settings.database_pool_size,
            application_name=f"nps-{definition.name}",
            repository=definition.repository,
            source=service_source(definition.name),
        )
        self.metrics.watch_pool(self.database.engine)
        self.verifier = ApiKeyVerifier(self.database)
        # aiokafka objects must be made inside the running loop; start() builds them.
        self._producer: AIOKafkaProducer | None = None
        self._relay: OutboxRelay | None = None
        self._jobs: JobRunner | None = None
        self.runners: list[ConsumerRunner] = []
        self.extras = definition.extras
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the runtime is not started")
        return self._producer

    @property
    def relay(self) -> OutboxRelay:
        if self._relay is None:
            raise RuntimeError("the runtime is not started")
        return self._relay

    @property
    def jobs(self) -> JobRunner:
        if self._jobs is None:
            raise RuntimeError("the runtime is not started")
        return self._jobs

    async def start(self) -> None:
        self._producer = await self._start_producer()
        settings = self.settings
        self._relay = OutboxRelay(
            self.database,
            self._producer,
            self.metrics,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
            dlq_unattributed_key_days=settings.dlq_unattributed_key_days,
            broker_epoch=settings.broker_epoch,
        )
        self.runners = [
            ConsumerRunner(
                spec,
                service=self.definition.name,
                settings=settings,
                database=self.database,
                producer=self._producer,
                metrics=self.metrics,
            )
            for spec in self.definition.consumers
        ]
        jobs: list[Job] = [self._relay, *(make(self) for make in self.definition.jobs)]
        if self.runners:
            groups = [Group(r.spec.name, r.group_id, tuple(r.spec.topics)) for r in self.runners]
            jobs.append(ConsumerLagJob(self.definition.name, settings, groups))
        self._jobs = JobRunner(self.definition.name, jobs)
        self.database.on_commit = partial(self._jobs.wake, OutboxRelay.name)
        self.database.on_wake = self._jobs.wake
        for runner in self.runners:
            self._spawn(f"consumer-{runner.spec.name}", runner.run)
        for job in self._jobs.jobs:
            self._spawn(f"job-{job.name}", partial(self._jobs.run, job))
        log.info("service.started", extra={"service": self.definition.name})

    async def _start_producer(self) -> AIOKafkaProducer:
        delay = 0.5
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            producer = make_producer(self.settings, self.definition.name)
            try:
                await producer.start()
                return producer
            except KafkaError as error:
                await producer.stop()
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("kafka.unavailable", extra={"error": repr(error)[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    def _spawn(self, name: str, target: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            delay = 0.5
            while not self._stopping.is_set():
                try:
                    await target()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A background task that dies quietly stops the service doing its job; say so
                    # and start it again.
                    log.exception("task.crashed", extra={"task": name})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10)

        self._tasks.append(asyncio.create_task(supervised(), name=name))

    async def stop(self) -> None:
        self._stopping.set()
        for runner in self.runners:
            runner.stop()
        if self._jobs is not None:
            # Each job finishes the cycle it is in (the sender records what it sent) and drains.
            self._jobs.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
        await self.database.dispose()
        log.info("service.stopped", extra={"service": self.definition.name})

    async def check_dependencies(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.database.ping(), 3)
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"unavailable: {type(error).__name__}"
        try:
            if self._producer is None:
                raise RuntimeError("not started")
            ok = await asyncio.wait_for(self._producer.client.force_metadata_update(), 3)
            checks["kafka"] = "ok" if ok else "unavailable"
        except Exception as error:
            checks["kafka"] = f"unavailable: {type(error).__name__}"
        return checks

    def migrate(self) -> None:
        upgrade(self.definition.migrations, self.settings.database_url)
