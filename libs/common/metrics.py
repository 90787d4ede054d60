"""Prometheus metrics shared by every service, named ``nps_<service>_<thing>_<unit>``."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

#: One series per service in the process, always 1: join on it to label a panel with the version.
BUILD_INFO = Gauge(
    "nps_build_info",
    "The running build: package version, source revision (NPS_REVISION) and Python version",
    ["service", "version", "revision", "python"],
)


def package_version() -> str:
    try:
        return metadata.version("nps-platform")
    except metadata.PackageNotFoundError:
        return "unknown"


class ServiceMetrics:
    """The machinery metrics every service exposes. Services add their own business metrics."""

    def __init__(self, service: str) -> None:
        prefix = f"nps_{service}"
        self.service = service
        self.consumed = Counter(
            f"{prefix}_consumed_messages_total", "Kafka messages handled, by outcome", ["topic", "outcome"]
        )
        self.dead_lettered = Counter(
            f"{prefix}_dead_lettered_messages_total", "Messages sent to a DLQ topic", ["topic", "reason"]
        )
        self.batch_seconds = Histogram(
            f"{prefix}_consumer_batch_seconds", "Time to handle and commit one consumed batch", ["group"]
        )
        self.outbox_published = Counter(
            f"{prefix}_outbox_published_total", "Outbox events published", ["topic"]
        )
        self.outbox_pending = Gauge(f"{prefix}_outbox_pending", "Outbox events not yet published")
        self.held_events = Gauge(
            f"{prefix}_held_events",
            "Events held for a tenant this service has not heard of yet, by consumer group",
            ["group"],
        )
        self.http_requests = Counter(
            f"{prefix}_http_requests_total", "HTTP requests", ["method", "route", "status"]
        )
        self.http_seconds = Histogram(
            f"{prefix}_http_request_seconds", "HTTP request latency", ["method", "route"]
        )
        self.ready = Gauge(
            f"{prefix}_ready",
            "1 while the dependency (database, kafka) answers the readiness check, as of this scrape",
            ["dependency"],
        )
        self.db_pool_size = Gauge(f"{prefix}_db_pool_size", "Connections the database pool keeps open")
        self.db_pool_in_use = Gauge(
            f"{prefix}_db_pool_connections_in_use", "Database connections checked out of the pool now"
        )
        self.db_pool_overflow = Gauge(
            f"{prefix}_db_pool_overflow_connections", "Connections open beyond the pool size now"
        )
        self.db_pool_waiting = Gauge(
            f"{prefix}_db_pool_waiting", "Tasks waiting for a database connection from the pool now"
        )
        self.db_pool_acquire_seconds = Histogram(
            f"{prefix}_db_pool_acquire_seconds",
            "Time taken to get a connection from the database pool (waiting included)",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        BUILD_INFO.labels(
            service,
            package_version(),
            os.environ.get("NPS_REVISION") or "unknown",
            platform.python_version(),
        ).set(1)

    def watch_pool(self, engine: Any) -> None:
        """Read the engine's pool (a :class:`libs.common.db.MeasuredPool`) at scrape time, whichever
        pool it has then (dispose() replaces it); its acquire waits are observed as they happen."""
        self.db_pool_size.set_function(lambda: engine.pool.size())
        self.db_pool_in_use.set_function(lambda: engine.pool.checkedout())
        self.db_pool_overflow.set_function(lambda: max(0, engine.pool.overflow()))
        self.db_pool_waiting.set_function(lambda: getattr(engine.pool, "waiting", 0))
        engine.pool.on_acquire = self.db_pool_acquire_seconds.observe


_registry: dict[str, ServiceMetrics] = {}


def metrics_for(service: str) -> ServiceMetrics:
    """One instance per process and service: Prometheus refuses to register a name twice."""
    if service not in _registry:
        _registry[service] = ServiceMetrics(service)
    return _registry[service]


class BoundedLabel:
    """A label whose values are not a closed set (a tenant's own touchpoint names): the first
    ``limit`` distinct values this process sees are kept, every later one is reported as
    ``other``, so one tenant with thousands of names cannot make thousands of series."""

    OTHER = "other"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if len(self._admitted) < self.limit:
            self._admitted.add(value)
            return value
        return self.OTHER
