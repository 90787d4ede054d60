"""The live stream's fan-out: a cell's notice reaches the open streams of its tenant whose filters
it matches, and a stream that falls behind is ended rather than silently gapped."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from libs.common.events import NpsSegment, NpsUpdated, NpsWindow
from services.reporting.api.params import Segment
from services.reporting.api.stream import QUEUE_SIZE, CellStream
from services.reporting.handlers.scores import CellNotice, _cell, notice_of

pytestmark = pytest.mark.unit

TENANT = str(uuid.uuid4())


def notice(touchpoint: str = "web", segment: NpsSegment | None = None, version: int = 1) -> str:
    return CellNotice(
        tenant_id=TENANT,
        touchpoint=touchpoint,
        segment=segment,
        window=NpsWindow(bucket="day", start=date(2026, 3, 2), end=date(2026, 3, 3)),
        distribution=[1] + [0] * 9 + [3],
        version=version,
    ).model_dump_json()


def test_a_notice_reaches_the_streams_of_its_tenant_that_match_its_filters() -> None:
    stream = CellStream("postgresql+asyncpg://user:secret@db.example/nps")
    everybody = stream.subscribe(TENANT, None, None)
    web = stream.subscribe(TENANT, "web", None)
    shop = stream.subscribe(TENANT, "shop", None)
    danes = stream.subscribe(TENANT, None, Segment("country", "DK"))
    stranger = stream.subscribe(str(uuid.uuid4()), None, None)
    stream._heard(None, 1, "nps_cells", notice())
    stream._heard(
        None, 1, "nps_cells", notice(segment=NpsSegment(dimension="country", value="DK"), version=2)
    )
    stream._heard(None, 1, "nps_cells", "not json")
    assert [everybody.queue.qsize(), web.queue.qsize(), shop.queue.qsize(), stranger.queue.qsize()] == [
        1,
        1,
        0,
        0,
    ]
    pushed = web.queue.get_nowait()
    assert pushed is not None and pushed.score.responses == 4 and pushed.score.nps == 50.0
    dane = danes.queue.get_nowait()
    assert dane is not None and dane.version == 2 and danes.queue.empty()
    stream.unsubscribe(web)
    stream._heard(None, 1, "nps_cells", notice())
    assert web.queue.empty()


def test_a_stream_that_falls_behind_is_ended() -> None:
    stream = CellStream("postgresql+asyncpg://user:secret@db.example/nps")
    slow = stream.subscribe(TENANT, None, None)
    for version in range(1, QUEUE_SIZE + 2):
        stream._heard(None, 1, "nps_cells", notice(version=version))
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert items[-1] is None


def test_the_all_time_score_is_not_a_cell_and_a_cell_round_trips_into_its_notice() -> None:
    tenant = uuid.uuid4()
    common = {
        "touchpoint": "web",
        "promoters": 3,
        "passives": 0,
        "detractors": 1,
        "responses": 4,
        "nps": 50.0,
    }
    as_of = datetime.now(UTC)
    assert (
        _cell(tenant, NpsUpdated(**common, as_of=as_of, distribution=[1] + [0] * 9 + [3], version=4)) is None
    )
    window = NpsWindow(bucket="week", start=date(2026, 3, 2), end=date(2026, 3, 9))
    cell = _cell(
        tenant, NpsUpdated(**common, as_of=as_of, window=window, distribution=[1] + [0] * 9 + [3], version=4)
    )
    assert cell is not None and (cell.dimension, cell.value, cell.s0, cell.s10) == ("", "", 1, 3)
    assert notice_of(cell).window == window and notice_of(cell).segment is None
