"""What a case notification looks like in Slack and in Teams: the facts a person acts on, a link to
the case, and customer text that stays text (no mentions, no disguised links)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import cast

import pytest

from services.alerting.domain.chat import WHY_LIMIT, ChatNotice, shorten, slack_payload, teams_payload

CASE_URL = "https://nps.example/cases/7f1c9a"


def notice(
    *,
    title: str = "New detractor case",
    why: str | None = "The parcel came late and support never answered.",
    customer: str = "Ada Lovelace",
    touchpoint: str = "checkout",
    case_url: str = CASE_URL,
) -> ChatNotice:
    return ChatNotice(
        title=title,
        score=3,
        why=why,
        touchpoint=touchpoint,
        customer=customer,
        due_at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
        case_url=case_url,
        priority="high",
    )


def blocks(payload: dict[str, object]) -> list[dict[str, object]]:
    return cast(list[dict[str, object]], payload["blocks"])


def card(payload: dict[str, object]) -> dict[str, object]:
    [attachment] = cast(list[dict[str, object]], payload["attachments"])
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return cast(dict[str, object], attachment["content"])


def texts(value: object) -> list[str]:
    """Every ``text`` string anywhere in a payload."""
    if isinstance(value, dict):
        own = [value["text"]] if isinstance(value.get("text"), str) else []
        return own + [text for child in value.values() for text in texts(child)]
    if isinstance(value, list):
        return [text for child in value for text in texts(child)]
    return []


def test_the_slack_message_has_a_fallback_text_a_section_and_a_button_to_the_case() -> None:
    payload = slack_payload(notice())

    assert payload["text"] == (
        "New detractor case: score 3 from Ada Lovelace (checkout), priority high, due 2026-12-02 09:30 UTC"
    )
    section, comment, actions = blocks(payload)
    assert section["type"] == "section"
    assert section["text"] == {"type": "mrkdwn", "text": "*New detractor case*", "verbatim": True}
    fields = [field["text"] for field in cast(list[dict[str, str]], section["fields"])]
    assert fields[:4] == [
        "*Score*\n3",
        "*Priority*\nhigh",
        "*Customer*\nAda Lovelace",
        "*Touchpoint*\ncheckout",
    ]
    # The due time in each reader's own time zone, with UTC for clients that cannot show it.
    assert fields[4] == "*Due*\n<!date^1796203800^{date_short_pretty} {time}|2026-12-02 09:30 UTC>"
    assert (
        cast(dict[str, str], comment["text"])["text"] == "> The parcel came late and support never answered."
    )
    assert actions == {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open case"},
                "url": CASE_URL,
                "style": "primary",
            }
        ],
    }
    json.dumps(payload)  # what is posted must be plain JSON


def test_slack_control_characters_in_customer_text_are_escaped() -> None:
    payload = slack_payload(
        notice(
            why="<!channel> look at <https://evil.example|your invoice> & pay",
            customer="Tom & <Jerry>",
            touchpoint="<@U123>",
        )
    )
    everything = json.dumps(payload)
    assert "<!channel>" not in everything
    assert "<https://evil.example" not in everything
    assert "<@U123>" not in everything
    comment = cast(dict[str, str], blocks(payload)[1]["text"])["text"]
    assert comment == "> &lt;!channel&gt; look at &lt;https://evil.example|your invoice&gt; &amp; pay"
    assert "Tom &amp; &lt;Jerry&gt;" in cast(str, payload["text"])
    assert "*Customer*\nTom &amp; &lt;Jerry&gt;" in texts(payload)


def test_a_multi_line_comment_is_quoted_line_by_line_and_a_missing_one_said_so() -> None:
    quoted = cast(dict[str, str], blocks(slack_payload(notice(why="Too slow.\nToo dear.")))[1]["text"])[
        "text"
    ]
    assert quoted == "> Too slow.\n> Too dear."
    for why in (None, "", "   "):
        assert (
            cast(dict[str, str], blocks(slack_payload(notice(why=why)))[1]["text"])["text"] == "_No comment._"
        )


def test_a_long_comment_is_cut_to_about_500_characters_in_both() -> None:
    long = "word " * 400
    slack_comment = cast(dict[str, str], blocks(slack_payload(notice(why=long)))[1]["text"])["text"]
    assert slack_comment.endswith("…")
    assert len(slack_comment) <= len("> ") + WHY_LIMIT
    teams_comment = [text for text in texts(teams_payload(notice(why=long))) if text.startswith("word")]
    assert [len(text) <= WHY_LIMIT and text.endswith("…") for text in teams_comment] == [True]


def test_shorten_cuts_with_an_ellipsis_only_when_needed() -> None:
    assert shorten("  short  ", 10) == "short"
    assert shorten("exactly10!", 10) == "exactly10!"
    assert shorten("eleven chars", 10) == "eleven ch…"


def test_the_teams_message_carries_one_adaptive_card_with_the_facts_and_a_link_to_the_case() -> None:
    payload = teams_payload(notice(title="Case overdue"))

    assert payload["type"] == "message"
    content = card(payload)
    assert content["type"] == "AdaptiveCard"
    assert content["version"] == "1.4"
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert content["actions"] == [{"type": "Action.OpenUrl", "title": "Open case", "url": CASE_URL}]
    body = cast(list[dict[str, object]], content["body"])
    assert body[0] == {
        "type": "TextBlock",
        "text": "Case overdue",
        "wrap": True,
        "size": "Medium",
        "weight": "Bolder",
    }
    shown = texts(body)
    for fact in (
        "Score: ",
        "3",
        "Priority: ",
        "high",
        "Customer: ",
        "Ada Lovelace",
        "Touchpoint: ",
        "checkout",
    ):
        assert fact in shown
    assert "2026-12-02 09:30 UTC" in shown
    assert "The parcel came late and support never answered." in shown
    assert "Case overdue: score 3" in cast(str, content["fallbackText"])
    json.dumps(payload)


def test_teams_customer_text_is_never_in_a_markdown_text_block() -> None:
    hostile = "[Pay your invoice here](https://evil.example) **now**"
    content = card(teams_payload(notice(why=hostile, customer=hostile, touchpoint=hostile)))

    def markdown_texts(value: object) -> list[str]:
        if isinstance(value, dict):
            own = [cast(str, value["text"])] if value.get("type") == "TextBlock" else []
            return own + [text for child in value.values() for text in markdown_texts(child)]
        if isinstance(value, list):
            return [text for child in value for text in markdown_texts(child)]
        return []

    assert all("evil.example" not in text for text in markdown_texts(content))
    # It is still shown, as plain text runs.
    assert texts(content).count(hostile) == 3


def test_a_case_link_must_be_a_web_link() -> None:
    with pytest.raises(ValueError, match="case_url"):
        notice(case_url="javascript:alert(1)")
