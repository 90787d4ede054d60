"""Prometheus metrics shared by every service, named ``nps_<service>_<thing>_<unit>``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram


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
        self.http_requests = Counter(
            f"{prefix}_http_requests_total", "HTTP requests", ["method", "route", "status"]
        )
        self.http_seconds = Histogram(
            f"{prefix}_http_request_seconds", "HTTP request latency", ["method", "route"]
        )


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
