"""The invitation email and the survey pages, rendered from the Jinja2 templates in ``templates/``
in the person's language, from the gettext catalogs in ``locales/<language>/LC_MESSAGES/messages.po``.

Every word a respondent reads is a message in those catalogs (English is the source language), so a
language is added by adding a catalog, not code. HTML templates are autoescaped (a tenant or person
name is data, never markup); text ones are not.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.survey.domain.answers import CSAT_SCALE, EFFORT_SCALE, SCORES
from services.survey.domain.languages import DEFAULT_LANGUAGE, LANGUAGES

TEMPLATES = Path(__file__).parent / "templates"
LOCALES = Path(__file__).parent / "locales"
DOMAIN = "messages"

_WHITESPACE = re.compile(r"\s+")


def catalog_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of a language. Compiled in memory from the ``.po`` file at first use,
    so the repository holds only text and nobody has to remember to run a compile step."""
    path = catalog_path(language)
    if language == DEFAULT_LANGUAGE or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


@functools.cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Whitespace inside {% trans %} blocks is layout, not part of the message a translator sees.
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(template: str, language: str = DEFAULT_LANGUAGE, **context: Any) -> str:
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    return environment(language).get_template(template).render(language=language, **context)


def one_line(text: str) -> str:
    """Header values must not carry line breaks (header injection); names might."""
    return _WHITESPACE.sub(" ", text).strip()


@dataclass(frozen=True, slots=True)
class ScoreLink:
    score: int
    url: str


def survey_url(public_url: str, token: str) -> str:
    return f"{public_url}/s/{token}"


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url}/u/{token}"


def pixel_url(public_url: str, token: str) -> str:
    return f"{public_url}/o/{token}.gif"


def score_links(public_url: str, token: str) -> list[ScoreLink]:
    return [ScoreLink(score, f"{survey_url(public_url, token)}/{score}") for score in SCORES]


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Branding:
    """How a tenant's emails and pages look and who they come from."""

    company: str | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    logo_url: str | None = None
    brand_colour: str = "#2680c2"
    open_tracking: bool = True


@dataclass(frozen=True, slots=True)
class Questions:
    """The touchpoint's wording and follow-up questions."""

    touchpoint_label: str | None = None
    ask_recommended: bool = True
    ask_csat: bool = False
    ask_effort: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def invitation_email(
    *,
    invitation_id: uuid.UUID,
    recipient: Recipient,
    token: str,
    public_url: str,
    mail_from: str,
    mail_domain: str,
    now: datetime,
    language: str = DEFAULT_LANGUAGE,
    branding: Branding | None = None,
    questions: Questions | None = None,
    reminder: bool = False,
) -> EmailMessage:
    """The invitation (or its one reminder): a plain-text part and an HTML part with eleven one-click
    score buttons, the RFC 8058 one-click unsubscribe headers and a visible unsubscribe link.

    Raises ``ValueError`` for an address the email package cannot put in a header; retrying
    cannot fix that.
    """
    branding = branding or Branding()
    questions = questions or Questions()
    name = one_line(recipient.name) if recipient.name else None
    company = one_line(branding.company) if branding.company else None
    context = _email_context(public_url, token, name, company, branding, questions, reminder=reminder)
    message = EmailMessage()
    _address(message, mail_from, recipient, name, company, branding)
    message["Subject"] = one_line(render("invitation_subject.txt", language, **context))
    message["Date"] = format_datetime(now)
    # Deterministic, so a re-send after a crash is recognisably the same message; a reminder is
    # another message about the same invitation, and bounce reports name it, so it is derived too.
    message["Message-ID"] = f"<{invitation_id}{'.r' if reminder else ''}@{mail_domain}>"
    message["Auto-Submitted"] = "auto-generated"
    # RFC 8058: a mail client may unsubscribe with one POST, without opening anything.
    message["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(render("invitation.txt", language, **context), cte="quoted-printable")
    message.add_alternative(
        render("invitation.html", language, **context), subtype="html", cte="quoted-printable"
    )
    # After the parts: setting content clears the Content-* headers.
    message["Content-Language"] = language
    return message


def _email_context(
    public_url: str,
    token: str,
    name: str | None,
    company: str | None,
    branding: Branding,
    questions: Questions,
    *,
    reminder: bool,
) -> dict[str, Any]:
    """What the invitation's subject, text and HTML templates are rendered with."""
    return {
        "company": company,
        "name": name,
        "touchpoint": questions.touchpoint_label,
        "links": score_links(public_url, token),
        "survey_url": survey_url(public_url, token),
        "unsubscribe_url": unsubscribe_url(public_url, token),
        "pixel_url": pixel_url(public_url, token) if branding.open_tracking else None,
        "logo_url": branding.logo_url,
        "brand_colour": branding.brand_colour,
        "reminder": reminder,
    }


def _address(
    message: EmailMessage,
    mail_from: str,
    recipient: Recipient,
    name: str | None,
    company: str | None,
    branding: Branding,
) -> None:
    """From (in the tenant's name where it has one), Reply-To and To."""
    display, address = parseaddr(mail_from)
    sender_name = branding.sender_name or company or display
    message["From"] = Address(display_name=one_line(sender_name or ""), addr_spec=address)
    if branding.reply_to:
        message["Reply-To"] = branding.reply_to
    # The email package's header defects are ValueErrors.
    message["To"] = Address(display_name=name or "", addr_spec=recipient.email)


def invitation_id_from_message_id(message_id: str | None) -> uuid.UUID | None:
    """The invitation a bounce report is about, from the Message-ID of our original message."""
    if not message_id:
        return None
    local = message_id.strip().strip("<>").split("@", 1)[0].removesuffix(".r")
    try:
        return uuid.UUID(local)
    except ValueError:
        return None


def page(template: str, language: str = DEFAULT_LANGUAGE, **context: Any) -> str:
    return render(
        template, language, scores=SCORES, csat_scale=CSAT_SCALE, effort_scale=EFFORT_SCALE, **context
    )
