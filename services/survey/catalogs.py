"""The survey's translation catalogs: extract the messages from the templates, merge them into every
language's ``.po`` file, and check that no language misses one.

    python -m services.survey.catalogs update     # after changing a template: refresh every .po
    python -m services.survey.catalogs check      # exit 1, listing them, if any message is untranslated
    python -m services.survey.catalogs add xx     # start a new language from the template

Translators edit ``services/survey/locales/<language>/LC_MESSAGES/messages.po`` with any gettext
tool; the service compiles them when it starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from services.survey.domain.languages import DEFAULT_LANGUAGE, LANGUAGES
from services.survey.rendering import DOMAIN, LOCALES, TEMPLATES, catalog_path

TEMPLATE_PATH = LOCALES / f"{DOMAIN}.pot"
_METHODS = [("**.html", "jinja2"), ("**.txt", "jinja2")]
_OPTIONS = {"**": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def extract() -> Catalog:
    """Every message the templates use, with where it is used."""
    catalog = Catalog(domain=DOMAIN, project="nps-survey", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(TEMPLATES), method_map=_METHODS, options_map=_OPTIONS
    ):
        where = [(f"templates/{filename}", lineno)]
        catalog.add(message, None, where, auto_comments=comments, context=context)
    return catalog


def load(language: str) -> Catalog:
    with catalog_path(language).open("rb") as source:
        return read_po(source, locale=language, domain=DOMAIN)


def _write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as target:
        write_po(target, catalog, width=100, sort_output=False)


def update() -> None:
    template = extract()
    _write(TEMPLATE_PATH, template)
    for language in LANGUAGES:
        path = catalog_path(language)
        catalog = load(language) if path.exists() else Catalog(locale=language, domain=DOMAIN)
        catalog.update(template, no_fuzzy_matching=True)
        _write(path, catalog)


def problems() -> dict[str, list[str]]:
    """Per language, the messages the templates use that it does not translate (English, the source
    language, needs none). A message marked fuzzy counts as untranslated: it is not used."""
    wanted = [message.id for message in extract() if message.id]
    found: dict[str, list[str]] = {}
    for language in LANGUAGES:
        if language == DEFAULT_LANGUAGE:
            continue
        if not catalog_path(language).exists():
            found[language] = ["<no catalog>"]
            continue
        catalog = load(language)
        missing = []
        for message_id in wanted:
            message = catalog.get(message_id)
            if message is None or not message.string or message.fuzzy:
                missing.append(str(message_id))
        if missing:
            found[language] = missing
    return found


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        update()
        return 0
    if command == "add" and len(argv) == 2:
        path = catalog_path(argv[1])
        if not path.exists():
            _write(path, Catalog(locale=argv[1], domain=DOMAIN))
        update()
        return 0
    if command == "check":
        found = problems()
        for language, missing in found.items():
            for message_id in missing:
                print(f"{language}: untranslated: {message_id!r}")
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
