"""What the alert emails tell people, and how failed sends are retried."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.alerting.domain import notices

CASE = notices.CaseFacts(
    case_id=uuid.UUID("6f0e2a4c-1111-4a4a-9c9c-123456789abc"),
    customer_id="customer-42",
    customer_name="Jane Doe",
    customer_email="jane@example.com",
    touchpoint="support-ticket",
    score=3,
    comment="Nobody answered my ticket for a week.",
    opened_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    due_at=datetime(2024, 5, 2, 12, 0, tzinfo=UTC),
    owner_email="owner@acme.example",
)


def test_the_owner_is_told_score_touchpoint_comment_due_time_and_how_to_mark_the_case() -> None:
    notice = notices.case_opened(CASE, "owner@acme.example")
    assert notice.kind is notices.NoticeKind.CASE_OPENED
    assert notice.recipient == "owner@acme.example"
    assert "score 3" in notice.subject
    assert "support-ticket" in notice.subject
    assert "A detractor (score 3)" in notice.body
    assert "touchpoint support-ticket" in notice.body
    assert "Nobody answered my ticket for a week." in notice.body
    assert "due by 2024-05-02 12:00 UTC" in notice.body
    assert f"PATCH /v1/cases/{CASE.case_id}" in notice.body
    assert "jane@example.com" in notice.body


def test_due_times_are_written_in_utc_whatever_zone_they_come_in() -> None:
    in_copenhagen = CASE.due_at.astimezone(ZoneInfo("Europe/Copenhagen"))
    assert notices.utc_text(in_copenhagen) == "2024-05-02 12:00 UTC"


def test_a_missing_comment_is_said_so() -> None:
    notice = notices.case_opened(dataclasses.replace(CASE, comment=None), "o@x.example")
    assert "(no comment)" in notice.body


def test_the_escalation_says_the_case_is_overdue_and_who_had_it() -> None:
    breached_at = datetime(2024, 5, 2, 12, 0, 30, tzinfo=UTC)
    notice = notices.case_breached(CASE, "escalations@acme.example", breached_at)
    assert notice.kind is notices.NoticeKind.CASE_BREACHED
    assert notice.recipient == "escalations@acme.example"
    assert "due by 2024-05-02 12:00 UTC" in notice.body
    assert "owner@acme.example" in notice.body
    assert f"PATCH /v1/cases/{CASE.case_id}" in notice.body


def test_retries_start_at_30_seconds_and_double() -> None:
    assert notices.retry_delay(1) == timedelta(seconds=30)
    assert notices.retry_delay(2) == timedelta(seconds=60)
    assert notices.retry_delay(3) == timedelta(seconds=120)


@given(attempts=st.integers(min_value=1, max_value=10_000))
def test_retry_waits_never_shrink_never_exceed_an_hour_and_end(attempts: int) -> None:
    delay = notices.retry_delay(attempts)
    if attempts >= notices.MAX_ATTEMPTS:
        assert delay is None
        return
    assert delay is not None
    assert timedelta(0) < delay <= notices.LONGEST_RETRY
    following = notices.retry_delay(attempts + 1)
    assert following is None or following >= delay


def test_every_notification_links_to_the_case_on_the_desk() -> None:
    url = notices.case_url("https://desk.acme.example/", CASE.case_id)
    assert url == f"https://desk.acme.example/desk/cases/{CASE.case_id}"
    linked = dataclasses.replace(CASE, case_url=url)
    breached_at = datetime(2024, 5, 2, 13, 0, tzinfo=UTC)
    for notice in (
        notices.case_opened(linked, "a@x.example"),
        notices.case_breached(linked, "a@x.example", breached_at),
    ):
        assert f"Open the case on the case desk: {url}" in notice.body
