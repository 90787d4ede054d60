"""Every language a respondent can be asked in is complete, keeps the tenant's and person's names in
its sentences, and renders the survey page in that language."""

from __future__ import annotations

import re

import pytest

from services.survey import catalogs, rendering
from services.survey.domain.languages import DEFAULT_LANGUAGE, LANGUAGES

_PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_every_language_translates_every_message() -> None:
    missing = catalogs.problems()

    assert not missing, "\n".join(
        f"{language}: untranslated: {message!r}"
        for language, messages in missing.items()
        for message in messages
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_the_placeholders_of_the_message(language: str) -> None:
    # A dropped %(company)s loses the tenant's name; an unknown one makes rendering raise.
    mismatched = [
        f"{language}: {message.id!r} -> {message.string!r}"
        for message in catalogs.load(language)
        if message.id and message.string
        if set(_PLACEHOLDER.findall(str(message.string))) != set(_PLACEHOLDER.findall(str(message.id)))
    ]

    assert not mismatched, "\n".join(mismatched)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_survey_page_renders_in_each_language(language: str) -> None:
    html = rendering.page(
        "survey.html",
        language,
        token="t" * 43,
        company="Acme",
        touchpoint="x",
        selected=None,
        problem=None,
        max_comment_length=5000,
        changing=False,
    )

    assert f'lang="{language}"' in html
    assert "Acme" in html
    if language != DEFAULT_LANGUAGE:
        assert "How likely are you to recommend" not in html
