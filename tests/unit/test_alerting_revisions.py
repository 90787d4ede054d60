"""What a newer version of an answer does to its follow-up case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.alerting.domain.cases import CaseStatus
from services.alerting.domain.revisions import (
    CaseAction,
    CaseState,
    Resolution,
    case_action,
    is_newer,
    reopened_by_score_change,
    reopened_note,
    resolved_by_score_change,
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


OPENED = datetime(2024, 3, 9, 10, 0, tzinfo=UTC)
SLA = timedelta(hours=24)


UNTOUCHED = CaseState(
    status=CaseStatus.OPEN,
    resolution=None,
    resolved_at=None,
    breached_at=None,
    due_at=OPENED + SLA,
    note=None,
)


@pytest.mark.parametrize("status", [CaseStatus.OPEN, CaseStatus.CONTACTED])
def test_a_score_changed_away_from_detractor_resolves_the_case_and_says_why(status: CaseStatus) -> None:
    now = OPENED + timedelta(hours=30)
    breached = OPENED + SLA + timedelta(minutes=1)
    case = replace(UNTOUCHED, status=status, breached_at=breached, note="Called, no answer.")

    resolved = resolved_by_score_change(case, old_score=3, new_score=9, now=now)

    assert resolved == CaseState(
        status=CaseStatus.RESOLVED,
        resolution=Resolution.SCORE_CHANGED,
        resolved_at=now,
        # What happened before stays on record: the breach and the due time.
        breached_at=breached,
        due_at=OPENED + SLA,
        note=resolved_note(3, 9),
    )
    assert case.status is status  # the old state is left as it was


def test_going_back_to_a_detractor_score_reopens_the_case_on_a_fresh_clock() -> None:
    resolved = replace(
        UNTOUCHED,
        status=CaseStatus.RESOLVED,
        resolution=Resolution.SCORE_CHANGED,
        resolved_at=OPENED + timedelta(hours=1),
        breached_at=OPENED + SLA + timedelta(minutes=1),
        note=resolved_note(3, 9),
    )
    given_at = OPENED + timedelta(days=3)

    reopened = reopened_by_score_change(resolved, old_score=9, new_score=2, due_at=given_at + SLA)

    assert reopened == CaseState(
        status=CaseStatus.OPEN,
        resolution=None,
        resolved_at=None,
        breached_at=None,
        due_at=given_at + SLA,
        note=reopened_note(9, 2),
    )
