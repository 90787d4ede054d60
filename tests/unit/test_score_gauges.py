"""The score gauges' bound: the series with the most answers keep their names, the rest are one
``other`` series, so no tenant can make the gauges grow without limit."""

from __future__ import annotations

import pytest

from services.scoring.gauges import OTHER, Series, bounded
from services.scoring.repository import TouchpointTotal

pytestmark = pytest.mark.unit


def test_past_the_limit_the_smallest_series_are_summed_as_other() -> None:
    totals = [
        TouchpointTotal("t1", "webshop", 5, 0, 1),
        TouchpointTotal("t2", "webshop", 1, 0, 0),
        TouchpointTotal("t1", "support", 0, 2, 0),
        TouchpointTotal("t3", "returns", 0, 0, 1),
    ]
    series = bounded(totals, 2)
    assert series == [
        Series("t1", "webshop", 5, 0, 1),
        Series("t1", "support", 0, 2, 0),
        Series(OTHER, OTHER, 1, 0, 1),
    ]
    assert sum(s.answers for s in series) == sum(t.promoters + t.passives + t.detractors for t in totals)
    assert series[-1].nps == 0.0
    assert series[0].nps == pytest.approx(100 * 4 / 6)


def test_within_the_limit_every_series_keeps_its_name_and_none_is_other() -> None:
    totals = [TouchpointTotal(None, f"tp-{n}", n, 0, 0) for n in range(1, 4)]
    assert [s.tenant for s in bounded(totals, 3)] == ["all", "all", "all"]
    assert OTHER not in [s.touchpoint for s in bounded(totals, 3)]
