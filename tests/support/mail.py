"""What tests read in the emails the services send."""

from __future__ import annotations

import re
from email.message import EmailMessage


def every_link(message: EmailMessage) -> list[str]:
    """Every address in an email that a mail scanner follows: each ``href`` and ``src`` of its HTML
    part, then its List-Unsubscribe header."""
    html = message.get_body(("html",))
    assert html is not None
    links: list[str] = re.findall(r'(?:href|src)="(http[^"]+)"', html.get_content())
    return [*links, message["List-Unsubscribe"].strip().strip("<>")]
