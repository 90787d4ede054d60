"""The live score stream: ``GET /v1/nps/stream``, Server-Sent Events of every score cell of the
tenant that changes, within a second of the change.

Each reporting process holds one Postgres connection that LISTENs on the channel the ``scores``
consumer notifies in the transaction storing a batch of cells
(:mod:`services.reporting.handlers.scores`). Postgres delivers a notice to every listening
process at commit, so whichever replica a browser is connected to pushes the change, whichever
replica consumed it. The connection is a background job of the service (:class:`CellStream`):
started with the service, re-opened within a second when it drops, closed on a clean stop, which
also ends every open stream. Notices sent while it was down are not replayed: a browser that
needs the exact state reads the panels again.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url

from libs.common.db import Database
from libs.common.deps import edge_of
from libs.common.events import NpsSegment, NpsWindow
from libs.common.jobs import Job
from libs.common.service import Runtime
from libs.common.web import TenantOrPerson
from services.reporting.api.insight import ScoreView, score_view
from services.reporting.api.params import Segment, TouchpointQuery, report_segment
from services.reporting.domain.insight import Score
from services.reporting.handlers.scores import CHANNEL, CellNotice

log = logging.getLogger(__name__)

router = APIRouter(tags=["reports"])

#: A comment line this often keeps proxies from closing a quiet stream.
KEEP_ALIVE_SECONDS = 15.0
#: Notices a slow client may fall behind by before its stream is ended (it reconnects).
QUEUE_SIZE = 256

SUBSCRIBERS = Gauge("nps_reporting_stream_subscribers", "Open live score streams of this process")
PUSHED = Counter("nps_reporting_stream_pushed_total", "Score changes pushed to live streams")
DROPPED = Counter("nps_reporting_stream_dropped_total", "Live streams ended for falling behind")


class StreamedCell(BaseModel):
    """The data of one ``nps`` event: a cell's whole state; nobody's email, token or answer."""

    touchpoint: str
    segment: NpsSegment | None
    window: NpsWindow
    score: ScoreView
    distribution: list[int]
    version: int


@dataclass(eq=False)
class Subscription:
    tenant_id: str
    touchpoint: str | None
    segment: Segment | None
    #: ``None`` ends the stream.
    queue: asyncio.Queue[StreamedCell | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def wants(self, notice: CellNotice) -> bool:
        if self.touchpoint is not None and notice.touchpoint != self.touchpoint:
            return False
        if self.segment is None:
            return notice.segment is None
        return notice.segment is not None and (notice.segment.dimension, notice.segment.value) == (
            self.segment.dimension,
            self.segment.value,
        )


def _streamed(notice: CellNotice) -> StreamedCell:
    return StreamedCell(
        touchpoint=notice.touchpoint,
        segment=notice.segment,
        window=notice.window,
        score=score_view(Score.of_distribution(notice.distribution)),
        distribution=notice.distribution,
        version=notice.version,
    )


class CellStream(Job):
    """The process's LISTEN connection and its fan-out to the open streams, by tenant."""

    name = "nps-stream"
    #: How often the connection is checked (and re-opened when it dropped).
    every = 1.0

    def __init__(self, database_url: str) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection: asyncpg.Connection | None = None
        self._subscriptions: dict[str, set[Subscription]] = {}

    async def run_once(self) -> int:
        if self._connection is not None and not self._connection.is_closed():
            return 0
        self._connection = None
        connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "nps-reporting-stream"}
        )
        await connection.add_listener(CHANNEL, self._heard)
        self._connection = connection
        log.info("stream.listening", extra={"channel": CHANNEL})
        return 0

    async def drain(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close(timeout=5)
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                _end(subscription)

    def subscribe(self, tenant_id: str, touchpoint: str | None, segment: Segment | None) -> Subscription:
        subscription = Subscription(tenant_id, touchpoint, segment)
        self._subscriptions.setdefault(tenant_id, set()).add(subscription)
        SUBSCRIBERS.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        mine = self._subscriptions.get(subscription.tenant_id, set())
        if subscription in mine:
            mine.discard(subscription)
            SUBSCRIBERS.dec()
            if not mine:
                self._subscriptions.pop(subscription.tenant_id, None)

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = CellNotice.model_validate_json(payload)
        except ValidationError:
            log.warning("stream.bad_notice", extra={"bytes": len(payload)})
            return
        wanting = [s for s in self._subscriptions.get(notice.tenant_id, ()) if s.wants(notice)]
        if not wanting:
            return
        cell = _streamed(notice)
        for subscription in wanting:
            try:
                subscription.queue.put_nowait(cell)
                PUSHED.inc()
            except asyncio.QueueFull:
                DROPPED.inc()
                _end(subscription)


def _end(subscription: Subscription) -> None:
    """Make room for the end marker: a stream that fell behind is ended, not silently gapped."""
    while subscription.queue.full():
        subscription.queue.get_nowait()
    subscription.queue.put_nowait(None)


#: The stream of each running service's database: a route reaches it through the app's edge.
_STREAMS: weakref.WeakKeyDictionary[Database[Any], CellStream] = weakref.WeakKeyDictionary()


def listener(runtime: Runtime) -> Job:
    """The job factory ``services/reporting/main.py`` wires in."""
    stream = CellStream(runtime.settings.database_url)
    _STREAMS[runtime.database] = stream
    return stream


def stream_of(request: Request) -> CellStream:
    stream = _STREAMS.get(edge_of(request).database)
    if stream is None:
        raise HTTPException(503, "the live stream is not running in this process")
    return stream


async def _events(stream: CellStream, subscription: Subscription) -> AsyncIterator[str]:
    try:
        # Tells a browser's EventSource how soon to reconnect, and opens the stream at once.
        yield "retry: 3000\n\n"
        while True:
            try:
                cell = await asyncio.wait_for(subscription.queue.get(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if cell is None:
                return
            yield f"event: nps\ndata: {cell.model_dump_json()}\n\n"
    finally:
        stream.unsubscribe(subscription)


# Not in the OpenAPI document: a stream that never ends is no request/response operation, and
# clients that read the document (generators, conformance runs) would wait on it forever. The
# README documents it.
@router.get("/v1/nps/stream", response_class=StreamingResponse, include_in_schema=False)
async def nps_stream(
    tenant: TenantOrPerson,
    stream: Annotated[CellStream, Depends(stream_of)],
    segment: Annotated[Segment | None, Depends(report_segment)],
    touchpoint: TouchpointQuery = None,
) -> StreamingResponse:
    """Server-Sent Events: an ``nps`` event each time one of the tenant's score cells changes
    (a day, ISO week or month of a touchpoint), with data ``{"touchpoint", "segment", "window":
    {"bucket", "start", "end"}, "score", "distribution", "version"}``, within about a second; a
    ``: keep-alive`` comment every 15 s. Only ``touchpoint``'s cells when given; the cells of
    everybody, or with ``segment=dimension:value`` of that segment only. Keep the highest
    ``version`` per cell: after a reconnect, read the panels again for what was missed."""
    subscription = stream.subscribe(str(tenant.tenant_id), touchpoint, segment)
    return StreamingResponse(
        _events(stream, subscription),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
