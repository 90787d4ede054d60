"""What a case notification says in a chat channel: a Slack incoming-webhook message and a Microsoft
Teams (incoming webhook or Workflows) message with an Adaptive Card. Pure: the payloads only.

Customer text (the comment, the name) is kept from acting as markup. In Slack ``&``, ``<`` and ``>``
are control characters (``<!channel>`` would notify the whole channel, ``<https://x|y>`` is a
disguised link), so they are escaped, and the text objects are ``verbatim`` (no auto-linking).
In an Adaptive Card a ``TextBlock`` reads Markdown (``[pay here](https://…)`` would be a link)
while a ``TextRun`` of a ``RichTextBlock`` does not, so customer text goes only into ``TextRun``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.alerting.domain.notices import utc_text

WHY_LIMIT = 500
SHORT_LIMIT = 150
OPEN_CASE = "Open case"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


@dataclass(frozen=True, slots=True)
class ChatNotice:
    """One case, as a chat message tells it. ``title``: what happened ("New detractor case", "Case
    overdue", "Escalated"); ``customer``: a name, or the id when there is none."""

    title: str
    score: int
    why: str | None
    touchpoint: str
    customer: str
    due_at: datetime
    case_url: str
    priority: str

    def __post_init__(self) -> None:
        if not self.case_url.startswith(("https://", "http://")):
            raise ValueError("case_url must be an http(s) link to the case")


def shorten(text: str, limit: int) -> str:
    """``text`` stripped, and cut to ``limit`` characters with an ellipsis when longer."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def slack_escape(text: str) -> str:
    """Slack's three control characters as the entities Slack asks for; nothing else is encoded."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _why(notice: ChatNotice) -> str | None:
    why = notice.why.strip() if notice.why else ""
    return shorten(why, WHY_LIMIT) if why else None


def _summary(notice: ChatNotice) -> str:
    customer = shorten(notice.customer, SHORT_LIMIT)
    touchpoint = shorten(notice.touchpoint, SHORT_LIMIT)
    return (
        f"{shorten(notice.title, SHORT_LIMIT)}: score {notice.score} from {customer} ({touchpoint}), "
        f"priority {notice.priority}, due {utc_text(notice.due_at)}"
    )


def _slack_due(due_at: datetime) -> str:
    # Slack shows the date in each reader's own time zone; the text after | is for clients that cannot.
    return f"<!date^{int(due_at.timestamp())}^{{date_short_pretty}} {{time}}|{utc_text(due_at)}>"


def _mrkdwn(text: str) -> dict[str, object]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def slack_payload(notice: ChatNotice) -> dict[str, object]:
    """A Slack incoming-webhook message: ``text`` for notifications and old clients, ``blocks`` for the
    message itself (the facts, the customer's words, a button to the case)."""
    fields = [
        _mrkdwn(f"*Score*\n{notice.score}"),
        _mrkdwn(f"*Priority*\n{slack_escape(shorten(notice.priority, SHORT_LIMIT))}"),
        _mrkdwn(f"*Customer*\n{slack_escape(shorten(notice.customer, SHORT_LIMIT))}"),
        _mrkdwn(f"*Touchpoint*\n{slack_escape(shorten(notice.touchpoint, SHORT_LIMIT))}"),
        {"type": "mrkdwn", "text": f"*Due*\n{_slack_due(notice.due_at)}"},
    ]
    why = _why(notice)
    said = "\n".join(f"> {slack_escape(line)}" for line in why.splitlines()) if why else "_No comment._"
    blocks: list[dict[str, object]] = [
        {
            "type": "section",
            "text": _mrkdwn(f"*{slack_escape(shorten(notice.title, SHORT_LIMIT))}*"),
            "fields": fields,
        },
        {"type": "section", "text": _mrkdwn(said)},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": OPEN_CASE},
                    "url": notice.case_url,
                    "style": "primary",
                }
            ],
        },
    ]
    return {"text": slack_escape(_summary(notice)), "blocks": blocks}


def _fact_line(label: str, value: str) -> dict[str, object]:
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": f"{label}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": value},
        ],
    }


def teams_payload(notice: ChatNotice) -> dict[str, object]:
    """A Teams message carrying one Adaptive Card (1.4), as incoming webhooks and the Workflows
    "post to a channel when a webhook request is received" template take it."""
    why = _why(notice)
    body: list[dict[str, object]] = [
        # The title is the platform's own words ("Case overdue"), so a Markdown TextBlock is safe for it.
        {
            "type": "TextBlock",
            "text": shorten(notice.title, SHORT_LIMIT),
            "wrap": True,
            "size": "Medium",
            "weight": "Bolder",
        },
        _fact_line("Score", str(notice.score)),
        _fact_line("Priority", shorten(notice.priority, SHORT_LIMIT)),
        _fact_line("Customer", shorten(notice.customer, SHORT_LIMIT)),
        _fact_line("Touchpoint", shorten(notice.touchpoint, SHORT_LIMIT)),
        _fact_line("Due", utc_text(notice.due_at)),
        {"type": "TextBlock", "text": "Their comment:", "wrap": True, "isSubtle": True, "spacing": "Medium"},
        {
            "type": "RichTextBlock",
            "inlines": [{"type": "TextRun", "text": why or "(no comment)", "italic": True}],
        },
    ]
    card: dict[str, object] = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "fallbackText": _summary(notice),
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": OPEN_CASE, "url": notice.case_url}],
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }
