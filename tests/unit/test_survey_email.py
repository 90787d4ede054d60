"""The invitation email as a recipient's mail program sees it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest

from services.survey.config import SurveySettings
from services.survey.domain.tokens import survey_token
from services.survey.rendering import (
    Branding,
    Questions,
    Recipient,
    invitation_email,
    invitation_id_from_message_id,
    page,
)
from services.survey.sender import Signer

PUBLIC_URL = "https://survey.example.com"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


INVITATION = uuid.UUID("3f1b6a9e-2c4d-4e8f-9a1b-5c6d7e8f9a0b")


def _build(
    tenant_name: str | None = "Acme Shoes",
    name: str | None = "Jane Doe",
    *,
    language: str = "en",
    branding: Branding | None = None,
    questions: Questions | None = None,
    reminder: bool = False,
) -> tuple[EmailMessage, str]:
    token = survey_token("unit-test-secret", INVITATION)
    message = invitation_email(
        invitation_id=INVITATION,
        recipient=Recipient("jane@example.com", name),
        token=token,
        public_url=PUBLIC_URL,
        mail_from="NPS Survey <survey@nps.example.com>",
        mail_domain="nps.example.com",
        now=NOW,
        language=language,
        branding=branding or Branding(company=tenant_name),
        questions=questions,
        reminder=reminder,
    )
    return message, token


def _email(
    tenant_name: str | None = "Acme Shoes", name: str | None = "Jane Doe", **options: object
) -> tuple[EmailMessage, str]:
    message, token = _build(tenant_name, name, **options)  # type: ignore[arg-type]
    # What arrives: the bytes on the wire, parsed again.
    received = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(message.as_bytes())
    return received, token


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_it_is_a_text_and_an_html_alternative() -> None:
    message, _ = _email()
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


def test_the_html_part_has_eleven_one_click_scores_and_no_script() -> None:
    message, token = _email()
    _, html = _parts(message)
    links = re.findall(r'href="([^"]+)"', html)
    assert links[:11] == [f"{PUBLIC_URL}/s/{token}/{score}" for score in range(11)]
    # The twelfth: a visible unsubscribe link.
    assert links[11:] == [f"{PUBLIC_URL}/u/{token}"]
    assert "<script" not in html.lower()
    assert "<table" in html
    assert "How likely are you to recommend Acme Shoes to a friend or colleague?" in html


def test_the_text_part_has_the_question_and_the_same_eleven_links() -> None:
    message, token = _email()
    text, _ = _parts(message)
    assert "How likely are you to recommend Acme Shoes to a friend or colleague?" in text
    for score in range(11):
        assert f"{PUBLIC_URL}/s/{token}/{score}" in text
    assert "Hi Jane Doe," in text


def test_headers() -> None:
    message, token = _email()
    assert message["From"] == "Acme Shoes <survey@nps.example.com>"
    assert message["To"] == "Jane Doe <jane@example.com>"
    assert message["Message-ID"] == "<3f1b6a9e-2c4d-4e8f-9a1b-5c6d7e8f9a0b@nps.example.com>"
    assert message["Subject"] == "A quick question from Acme Shoes"
    assert message["Date"] is not None
    assert message["Content-Language"] == "en"
    # RFC 8058 one-click unsubscribe.
    # Folded onto its own line when long, which mail programs unfold.
    assert message["List-Unsubscribe"].strip() == f"<{PUBLIC_URL}/u/{token}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_sender_name_and_reply_to_come_from_the_tenant() -> None:
    message, _ = _email(
        branding=Branding(company="Acme Shoes", sender_name="Acme Kundeservice", reply_to="cx@acme.example")
    )
    assert message["From"] == "Acme Kundeservice <survey@nps.example.com>"
    assert message["Reply-To"] == "cx@acme.example"


def test_branding_logo_colour_and_open_pixel() -> None:
    message, token = _email(
        branding=Branding(
            company="Acme", logo_url="https://cdn.acme.example/logo.png", brand_colour="#aa3300"
        )
    )
    _, html = _parts(message)
    assert '<img src="https://cdn.acme.example/logo.png"' in html
    assert "border-top:4px solid #aa3300" in html
    assert f'<img src="{PUBLIC_URL}/o/{token}.gif" width="1" height="1"' in html
    without, _ = _email(branding=Branding(company="Acme", open_tracking=False))
    assert "/o/" not in _parts(without)[1]


def test_the_question_names_the_company_and_the_touchpoint() -> None:
    message, _ = _email(questions=Questions(touchpoint_label="your recent order"))
    text, html = _parts(message)
    question = (
        "Thinking of your recent order, how likely are you to recommend Acme Shoes to a friend or colleague?"
    )
    assert question in text
    assert question in html


def test_a_reminder_says_so_and_is_its_own_message() -> None:
    message, _ = _email(reminder=True)
    assert message["Subject"] == "Reminder: a quick question from Acme Shoes"
    assert message["Message-ID"] == "<3f1b6a9e-2c4d-4e8f-9a1b-5c6d7e8f9a0b.r@nps.example.com>"
    assert invitation_id_from_message_id(message["Message-ID"]) == INVITATION
    assert invitation_id_from_message_id("<not-ours@example.com>") is None


def test_the_email_is_in_the_persons_language() -> None:
    message, _ = _email(language="da")
    text, html = _parts(message)
    assert message["Content-Language"] == "da"
    assert 'lang="da"' in html
    assert "How likely are you" not in text
    assert "How likely are you" not in html
    assert "Acme Shoes" in text


def test_a_dkim_signature_verifies_against_the_public_key() -> None:
    keys = Path(__file__).parents[1] / "fixtures" / "dkim"
    private_pem = (keys / "test_private.pem").read_text()
    record = b"v=DKIM1; k=rsa; p=" + (keys / "test_public.b64").read_bytes().strip()
    settings = SurveySettings(
        dkim_private_key=private_pem, dkim_selector="nps", dkim_domain="nps.example.com"
    )
    message, _ = _build()
    signed = Signer(settings).sign(message)
    assert signed is not None and signed.startswith(b"DKIM-Signature:")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"nps._domainkey.nps.example.com."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    tampered = signed.replace(b"Acme Shoes", b"Acme Sh0es", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)
    assert Signer(SurveySettings()).sign(message) is None


def test_dkim_settings_come_together() -> None:
    with pytest.raises(ValueError, match="DKIM_PRIVATE_KEY, DKIM_SELECTOR and DKIM_DOMAIN"):
        SurveySettings(dkim_selector="nps")


def test_without_a_tenant_name_it_asks_about_us() -> None:
    message, _ = _email(tenant_name=None, name=None)
    text, html = _parts(message)
    assert "How likely are you to recommend us to a friend or colleague?" in text
    assert "How likely are you to recommend us to a friend or colleague?" in html
    assert message["To"] == "jane@example.com"
    assert message["Subject"] == "A quick question about your experience"
    assert "Hello," in text


def test_names_are_text_not_markup_and_cannot_break_headers() -> None:
    message, _ = _email(
        tenant_name="<b>Evil</b> & Co\r\nBcc: x@example.com", name="Mallory\nBcc: y@example.com"
    )
    _, html = _parts(message)
    assert "<b>Evil</b>" not in html
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in html
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"])


def test_the_survey_page_is_a_form_that_works_without_javascript() -> None:
    html = page(
        "survey.html",
        token="t" * 43,
        company="Acme Shoes",
        touchpoint=None,
        selected=7,
        problem=None,
        max_comment_length=5000,
        changing=False,
    )
    assert '<form method="post" action="/s/' + "t" * 43 + '">' in html
    assert len(re.findall(r'<input type="radio"', html)) == 11
    assert re.search(r'value="7" required checked', html)
    assert len(re.findall(r" checked>", html)) == 1
    assert 'name="viewport"' in html
    assert "How likely are you to recommend Acme Shoes to a friend or colleague?" in html
    for score in range(11):
        assert f'<label for="score-{score}">{score}</label>' in html
    assert "<script" not in html.lower()


@pytest.mark.parametrize(
    ("score", "why"),
    [
        (10, "What do you like most about us?"),
        (8, "What could we do to earn a higher score?"),
        (2, "We are sorry to hear that. What went wrong, and what should we do better?"),
    ],
)
def test_the_why_is_worded_for_promoters_passives_and_detractors(score: int, why: str) -> None:
    html = page(
        "followup.html",
        token="t" * 43,
        company="Acme",
        score=score,
        category={10: "promoter", 8: "passive", 2: "detractor"}[score],
        questions=Questions(ask_recommended=True, ask_csat=True, ask_effort=True),
        problem=None,
        max_comment_length=5000,
        changing=False,
        comment=None,
        recommended=None,
        csat=None,
        effort=None,
    )
    assert why in html
    assert '<label class="text" for="comment">' in html
    assert "Have you actually recommended us to someone in the last 12 months?" in html
    assert len(re.findall(r'name="csat"', html)) == 5
    assert len(re.findall(r'name="effort"', html)) == 7
    assert '<form method="post" action="/s/' + "t" * 43 + '/more">' in html
