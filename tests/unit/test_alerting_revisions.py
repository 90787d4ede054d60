"""What a newer version of an answer does to its follow-up case."""

from __future__ import annotations

import pytest

from services.alerting.domain.cases import CaseStatus
from services.alerting.domain.revisions import (
    CaseAction,
    Resolution,
    case_action,
    is_newer,
    resolved_note,
)


@pytest.mark.parametrize(
    ("status", "resolution", "score", "action"),
    [
        (None, None, 3, CaseAction.OPEN),
        (None, None, 7, CaseAction.NOTHING),
        (CaseStatus.OPEN, None, 9, CaseAction.RESOLVE),
        (CaseStatus.CONTACTED, None, 8, CaseAction.RESOLVE),
        (CaseStatus.OPEN, None, 5, CaseAction.REFRESH),
        (CaseStatus.RESOLVED, Resolution.HANDLED, 2, CaseAction.REFRESH),
        (CaseStatus.RESOLVED, Resolution.HANDLED, 10, CaseAction.REFRESH),
        (CaseStatus.RESOLVED, Resolution.SCORE_CHANGED, 2, CaseAction.REOPEN),
        (CaseStatus.RESOLVED, Resolution.SCORE_CHANGED, 9, CaseAction.REFRESH),
    ],
)
def test_the_case_follows_the_current_score(
    status: CaseStatus | None, resolution: Resolution | None, score: int, action: CaseAction
) -> None:
    assert case_action(status, resolution, score) is action


def test_only_a_higher_revision_replaces_the_one_held() -> None:
    assert is_newer(None, 1)
    assert is_newer(1, 2)
    assert not is_newer(2, 2)
    assert not is_newer(3, 2)


def test_the_automatic_resolution_says_why() -> None:
    assert "from 3 to 9" in resolved_note(3, 9)
