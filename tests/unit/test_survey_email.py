"""The invitation email as a recipient's mail program sees it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

from services.survey.domain.tokens import survey_token
from services.survey.rendering import Recipient, invitation_email, page

PUBLIC_URL = "https://survey.example.com"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _email(tenant_name: str | None = "Acme Shoes", name: str | None = "Jane Doe") -> tuple[EmailMessage, str]:
    invitation_id = uuid.UUID("3f1b6a9e-2c4d-4e8f-9a1b-5c6d7e8f9a0b")
    token = survey_token("unit-test-secret", invitation_id)
    message = invitation_email(
        invitation_id=invitation_id,
        recipient=Recipient("jane@example.com", name),
        tenant_name=tenant_name,
        token=token,
        public_url=PUBLIC_URL,
        mail_from="NPS Survey <survey@nps.example.com>",
        mail_domain="nps.example.com",
        now=NOW,
    )
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
    assert links == [f"{PUBLIC_URL}/s/{token}/{score}" for score in range(11)]
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
    message, _ = _email()
    assert message["From"] == "NPS Survey <survey@nps.example.com>"
    assert message["To"] == "Jane Doe <jane@example.com>"
    assert message["Message-ID"] == "<3f1b6a9e-2c4d-4e8f-9a1b-5c6d7e8f9a0b@nps.example.com>"
    assert message["Subject"] == "How likely are you to recommend Acme Shoes?"
    assert message["Date"] is not None


def test_without_a_tenant_name_it_asks_about_us() -> None:
    message, _ = _email(tenant_name=None, name=None)
    text, html = _parts(message)
    assert "How likely are you to recommend us to a friend or colleague?" in text
    assert "How likely are you to recommend us to a friend or colleague?" in html
    assert message["To"] == "jane@example.com"
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
        selected=7,
        comment=None,
        problem=None,
        max_comment_length=5000,
    )
    assert '<form method="post" action="/s/' + "t" * 43 + '">' in html
    assert len(re.findall(r'<input type="radio"', html)) == 11
    assert re.search(r'value="7" required checked', html)
    assert len(re.findall(r" checked>", html)) == 1
    assert 'name="viewport"' in html
    assert '<label class="comment" for="comment">What is the most important reason for your score?' in html
    for score in range(11):
        assert f'<label for="score-{score}">{score}</label>' in html
    assert "<script" not in html.lower()
