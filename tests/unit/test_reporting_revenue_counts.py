"""The answers counted beside revenue at risk are read page by page from the segments table's
query, so a dimension with more (touchpoint, value) rows than one page holds is counted whole."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

import pytest

from services.reporting.api import revenue
from services.reporting.domain.insight import SegmentSort, Span
from services.reporting.domain.revenue import Counted
from services.reporting.repository import CellFilter, ReportingRepository, SegmentRow


class _Rows:
    """The repository's segment_page over fixed rows, in the value order, after a cursor."""

    def __init__(self, rows: list[SegmentRow]) -> None:
        self.rows = sorted(rows, key=lambda row: (row.value, row.touchpoint))
        self.pages = 0

    async def segment_page(
        self,
        where: CellFilter,
        spans: Sequence[Span],
        sort: SegmentSort,
        after: Sequence[object] | None,
        limit: int,
    ) -> list[SegmentRow]:
        assert sort == "value"
        self.pages += 1
        rest = [
            row for row in self.rows if after is None or (row.value, row.touchpoint) > tuple(map(str, after))
        ]
        return rest[:limit]


def _row(touchpoint: str, value: str, detractors: int, passives: int) -> SegmentRow:
    distribution = [detractors, 0, 0, 0, 0, 0, 0, passives, 0, 1, 0]
    return SegmentRow(touchpoint, value, distribution, sum(distribution), None)


@pytest.mark.parametrize("by", ["touchpoint", "value"])
async def test_every_page_is_counted(monkeypatch: pytest.MonkeyPatch, by: str) -> None:
    monkeypatch.setattr(revenue, "COUNTED_PAGE", 2)
    rows = _Rows(
        [
            _row("shop", "DK", 2, 1),
            _row("support", "DK", 1, 0),
            _row("shop", "SE", 3, 3),
            _row("support", "SE", 0, 1),
            _row("shop", "NO", 5, 0),
        ]
    )
    found = await revenue._counted_by(
        cast(ReportingRepository, rows),
        CellFilter(uuid.UUID(int=1)),
        [],
        "touchpoint" if by == "touchpoint" else "value",
    )
    assert rows.pages == 3
    if by == "touchpoint":
        assert found == {"shop": Counted(10, 4), "support": Counted(1, 1)}
    else:
        assert found == {"DK": Counted(3, 1), "NO": Counted(5, 0), "SE": Counted(3, 4)}
