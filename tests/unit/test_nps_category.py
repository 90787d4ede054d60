"""The NPS groups, defined once beside the score contract, and every service's rule agreeing with it."""

from __future__ import annotations

import pytest

from libs.common.events import NpsCategory, nps_category
from services.alerting.domain.cases import is_detractor
from services.reporting.domain.summary import ScoreCounts
from services.scoring.domain.nps import Tally


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, NpsCategory.DETRACTOR),
        (6, NpsCategory.DETRACTOR),
        (7, NpsCategory.PASSIVE),
        (8, NpsCategory.PASSIVE),
        (9, NpsCategory.PROMOTER),
        (10, NpsCategory.PROMOTER),
    ],
)
def test_the_boundaries_of_each_group(score: int, category: NpsCategory) -> None:
    assert nps_category(score) is category


@pytest.mark.parametrize("score", [-1, 11, True])
def test_a_score_outside_the_scale_has_no_group(score: int) -> None:
    with pytest.raises(ValueError, match="0 to 10"):
        nps_category(score)


@pytest.mark.parametrize("score", range(11))
def test_every_service_groups_a_score_the_same_way(score: int) -> None:
    category = nps_category(score)
    assert is_detractor(score) is (category is NpsCategory.DETRACTOR)
    assert Tally.of([score]).by_category()[category] == 1
    counts = ScoreCounts.from_histogram({score: 1})
    assert (counts.promoters, counts.passives, counts.detractors) == (
        category is NpsCategory.PROMOTER,
        category is NpsCategory.PASSIVE,
        category is NpsCategory.DETRACTOR,
    )
    # The survey page words its "why?" per group, comparing with the group's name.
    assert category == category.value
