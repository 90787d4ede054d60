"""How the report page words numbers, and that tenant text reaches it escaped."""

from __future__ import annotations

import pytest

from services.reporting.api.summary import _TEMPLATES
from services.reporting.domain import display
from services.reporting.domain.summary import FollowUpAnswers, Funnel, Summary

pytestmark = pytest.mark.unit


def test_a_share_of_nothing_is_no_share_rather_than_a_division_by_zero() -> None:
    assert display.share(2, 4) == 0.5
    assert display.share(0, 0) is None
    assert display.share(3, 0) is None
    assert display.percent(display.share(2, 4)) == "50.0 %"
    assert display.percent(display.share(1, 3)) == "33.3 %"
    assert display.percent(None) == "—"


def test_numbers_are_worded_with_one_decimal_and_a_spelled_out_sign() -> None:
    assert display.one_decimal(4.0) == "4.0"
    assert display.one_decimal(10 / 3) == "3.3"
    assert display.one_decimal(None) == "—"
    assert display.signed_score(25.0) == "+25.0"
    assert display.signed_score(-12.34) == "-12.3"
    assert display.signed_score(-0.04) == "0.0"
    assert display.signed_score(None) == "—"
    assert display.count(12345) == "12,345"


def test_the_funnel_gives_each_step_its_share_of_sent() -> None:
    summary = Summary(funnel=Funnel(sent=4, opened=2, clicked=1, bounced=1, failed=2))
    cells = {cell.label: (cell.invitations, cell.share_of_sent) for cell in display.funnel_cells(summary)}
    assert cells == {
        "Sent": ("4", "100.0 %"),
        "Opened": ("2", "50.0 %"),
        "Opened by a machine only": ("0", "0.0 %"),
        "Clicked": ("1", "25.0 %"),
        "Responded": ("0", "0.0 %"),
        "Reminded": ("0", "0.0 %"),
        "Bounced": ("1", "25.0 %"),
        "Unsubscribed": ("0", "0.0 %"),
        "Expired": ("0", "0.0 %"),
        # Never sent, so no share of what was.
        "Failed (never delivered)": ("2", "—"),
    }
    # Steps seen but no invitation sent (say the filter's date falls in between): no share.
    unsent = display.funnel_cells(Summary(funnel=Funnel(opened=1)))
    assert {cell.share_of_sent for cell in unsent} == {"—"}


def test_follow_up_answers_show_how_many_answered_and_nothing_when_nobody_did() -> None:
    answered = FollowUpAnswers(
        recommended_yes=1,
        recommended_answers=2,
        csat_total=8,
        csat_answers=2,
        effort_total=2,
        effort_answers=1,
    )
    assert display.follow_up_cells(Summary(follow_up=answered)) == display.FollowUpCells(
        recommended_share="50.0 %",
        recommended_of="1 of 2",
        average_csat="4.0",
        csat_answers="2",
        average_effort="2.0",
        effort_answers="1",
    )
    assert display.follow_up_cells(Summary()) == display.FollowUpCells(
        recommended_share="—",
        recommended_of="0 of 0",
        average_csat="—",
        csat_answers="0",
        average_effort="—",
        effort_answers="0",
    )


def test_the_page_escapes_touchpoint_names() -> None:
    hostile = '<script>alert("x")</script>'
    page = _TEMPLATES.get_template("summary.html").render(
        fmt=display, scope="All touchpoints.", overall=Summary(), by_touchpoint=[(hostile, Summary())]
    )
    assert hostile not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert '<th scope="row">' in page
    assert "<caption>" in page


def test_failures_are_worded_by_reason_most_frequent_first() -> None:
    summary = Summary(failed_by_reason={"expired": 1, "recipient_refused": 3})
    assert display.failure_rows(summary) == [
        ("The address does not exist", "3"),
        ("Expired before it could be sent", "1"),
    ]
    both = summary + Summary(failed_by_reason={"expired": 2})
    assert both.failed_by_reason == {"expired": 3, "recipient_refused": 3}
