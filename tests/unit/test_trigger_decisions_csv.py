"""The decisions CSV's range (defaults, time zones, the 422s naming the parameter) and its cells
(quoted against spreadsheet formulas), without a server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException

from services.trigger.api.exports import COLUMNS, _row, export_range
from services.trigger.repository import ExportedDecision

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def test_by_default_the_range_is_the_90_days_up_to_tomorrow() -> None:
    assert export_range(None, None, now=NOW) == (
        datetime(2026, 9, 3, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
    )


def test_dates_are_utc_midnights_and_offsets_are_converted() -> None:
    since, until = export_range("2026-01-01", "2026-01-02T01:00:00+02:00", now=NOW)
    assert (since, until) == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 23, tzinfo=UTC))


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        ("2026-02-01", "2026-01-01", "query.since"),
        ("2026-01-01", "2026-01-01", "query.since"),
        ("2023-01-01", "2026-01-02", "query.since"),
        ("yesterday", None, "query.since"),
        (None, "0001-01-01", "query.until"),
        ("9999-12-31T23:00:00-14:00", None, "query.since"),
    ],
)
def test_a_bad_range_names_the_parameter(since: str | None, until: str | None, field: str) -> None:
    with pytest.raises(HTTPException) as refused:
        export_range(since, until, now=NOW)
    assert refused.value.status_code == 422
    assert isinstance(refused.value.detail, dict)
    assert [problem["field"] for problem in refused.value.detail["problems"]] == [field]


def test_three_years_is_the_longest_range() -> None:
    since, until = export_range("2023-01-01", "2026-01-01", now=NOW)
    assert until - since == timedelta(days=1096)


def test_text_cells_that_a_spreadsheet_would_run_get_an_apostrophe() -> None:
    decision = ExportedDecision(
        id=1,
        decided_at=NOW,
        event_id="=1+1",
        event_type="purchase.completed.v1",
        customer_id="@SUM(A1)",
        touchpoint=None,
        touchpoint_version=None,
        outcome="skipped",
        reason="no_email",
        detail="\tx",
        invitation_id=uuid.UUID(int=7),
        rest_period_days=180,
        rest_until=None,
        send_at=None,
    )
    row = dict(zip(COLUMNS, _row(decision), strict=True))
    assert (row["event_id"], row["customer_id"], row["detail"]) == ("'=1+1", "'@SUM(A1)", "'\tx")
    assert row["decided_at"] == "2026-12-01T17:00:00+00:00"
    assert (row["touchpoint"], row["rest_period_days"]) == ("", 180)
    assert row["invitation_id"] == str(uuid.UUID(int=7))
