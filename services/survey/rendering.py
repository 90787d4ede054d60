"""The invitation email and the survey pages, rendered from the Jinja2 templates in ``templates/``.

Every word a respondent reads lives in a template, so that languages can be added as templates.
HTML templates are autoescaped (a tenant or person name is data, never markup); text ones are not.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.survey.domain.answers import SCORES

TEMPLATES = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)

_WHITESPACE = re.compile(r"\s+")


def render(template: str, **context: Any) -> str:
    return _environment.get_template(template).render(**context)


def one_line(text: str) -> str:
    """Header values must not carry line breaks (header injection); names might."""
    return _WHITESPACE.sub(" ", text).strip()


@dataclass(frozen=True, slots=True)
class ScoreLink:
    score: int
    url: str


def survey_url(public_url: str, token: str) -> str:
    return f"{public_url}/s/{token}"


def score_links(public_url: str, token: str) -> list[ScoreLink]:
    return [ScoreLink(score, f"{survey_url(public_url, token)}/{score}") for score in SCORES]


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    name: str | None


def invitation_email(
    *,
    invitation_id: uuid.UUID,
    recipient: Recipient,
    tenant_name: str | None,
    token: str,
    public_url: str,
    mail_from: str,
    mail_domain: str,
    now: datetime,
) -> EmailMessage:
    """The invitation: a plain-text part and an HTML part with eleven one-click score buttons.

    Raises ``ValueError`` for an address the email package cannot put in a header; retrying
    cannot fix that.
    """
    name = one_line(recipient.name) if recipient.name else None
    context = {
        "company": one_line(tenant_name) if tenant_name else None,
        "name": name,
        "links": score_links(public_url, token),
        "survey_url": survey_url(public_url, token),
    }
    message = EmailMessage()
    message["From"] = mail_from
    # The email package's header defects are ValueErrors.
    message["To"] = Address(display_name=name or "", addr_spec=recipient.email)
    message["Subject"] = one_line(render("invitation_subject.txt", **context))
    message["Date"] = format_datetime(now)
    # Deterministic, so a re-send after a crash is recognisably the same message.
    message["Message-ID"] = f"<{invitation_id}@{mail_domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render("invitation.txt", **context), cte="quoted-printable")
    message.add_alternative(render("invitation.html", **context), subtype="html", cte="quoted-printable")
    return message


def page(template: str, **context: Any) -> str:
    return render(template, scores=SCORES, **context)
