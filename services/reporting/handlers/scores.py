"""The ``scores`` consumer: score cells as scoring announces them (``nps.updated.v1`` on
``nps.scores``) into ``reporting.nps_cells``, and a notice of each changed cell to the live stream.

A cell's event carries its whole state and a version that grows with every change, so the batch
keeps each cell's highest version, and the upsert leaves a stored cell alone unless the arriving
version is higher: redeliveries and an older version arriving late change nothing. The all-time
score (``window.bucket = "all"``) is scoring's own headline; the panels sum cells, so it is ignored.

The notices are ``pg_notify`` in the same transaction: Postgres hands them to every reporting
process listening (:mod:`services.reporting.api.stream`) when the batch commits, and never for a
batch that rolled back.
"""

from __future__ import annotations

import uuid
from datetime import date

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict

from libs.common.db import UnitOfWork
from libs.common.events import Contract, Distribution, Event, NpsSegment, NpsUpdated, NpsWindow, Touchpoint
from services.reporting.domain.insight import Bucket, bucket_end
from services.reporting.models import SCORE_COLUMNS, NpsCell
from services.reporting.repository import ReportingRepository

#: The Postgres channel the live stream listens on.
CHANNEL = "nps_cells"
#: The segment of everybody, as the table keys it.
EVERYBODY = ""

CELLS = Counter(
    "nps_reporting_cells_total",
    "Score cells received, by outcome: stored (new or newer), stale (not newer than the stored "
    "version), ignored (the all-time score, or a cell without its distribution or version)",
    ["outcome"],
)


class CellNotice(BaseModel):
    """What the stream learns of a changed cell: its key and state, no person's data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    touchpoint: Touchpoint
    segment: NpsSegment | None
    window: NpsWindow
    distribution: Distribution
    version: int


def _cell(tenant_id: uuid.UUID, data: NpsUpdated) -> NpsCell | None:
    window = data.window
    if window.bucket == "all" or window.start is None or data.distribution is None or data.version is None:
        return None
    segment = data.segment
    return NpsCell(
        tenant_id=tenant_id,
        touchpoint=data.touchpoint,
        dimension=EVERYBODY if segment is None else segment.dimension,
        value=EVERYBODY if segment is None else segment.value,
        bucket=window.bucket,
        start=window.start,
        **dict(zip(SCORE_COLUMNS, data.distribution, strict=True)),
        version=data.version,
        as_of=data.as_of,
        spend=None if data.spend is None else [each.model_dump() for each in data.spend],
    )


def notice_of(cell: NpsCell) -> CellNotice:
    bucket: Bucket = "day" if cell.bucket == "day" else "week" if cell.bucket == "week" else "month"
    start: date = cell.start
    return CellNotice(
        tenant_id=str(cell.tenant_id),
        touchpoint=cell.touchpoint,
        segment=None
        if cell.dimension == EVERYBODY
        else NpsSegment(dimension=cell.dimension, value=cell.value),
        window=NpsWindow(bucket=bucket, start=start, end=bucket_end(bucket, start)),
        distribution=[getattr(cell, name) for name in SCORE_COLUMNS],
        version=cell.version,
    )


async def record(events: list[Event[Contract]], uow: UnitOfWork[ReportingRepository]) -> None:
    """Store a batch of cells, the highest version of each, and notify the stream of those that
    changed: one upsert and one notify per batch."""
    latest: dict[tuple[object, ...], NpsCell] = {}
    received = 0
    for event in events:
        if not isinstance(event.data, NpsUpdated):
            continue
        cell = _cell(event.tenant, event.data)
        if cell is None:
            uow.count(CELLS.labels("ignored"))
            continue
        received += 1
        key = (cell.tenant_id, cell.touchpoint, cell.dimension, cell.value, cell.bucket, cell.start)
        if key not in latest or latest[key].version < cell.version:
            latest[key] = cell
    changed = await uow.repository.record_cells(list(latest.values()))
    uow.count(CELLS.labels("stored"), len(changed))
    uow.count(CELLS.labels("stale"), received - len(changed))
    # A notice is at most ~2.5 kB (a 200-character value, 11 counts), well within pg_notify's 8000.
    await uow.repository.notify(CHANNEL, [notice_of(cell).model_dump_json() for cell in changed])
