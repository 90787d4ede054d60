"""ARCHITECTURE.md names files a newcomer can open: every one of them must exist, so that moving a
file without updating the map fails here instead of leaving the map wrong."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "ARCHITECTURE.md"
SERVICES = ("trigger", "survey", "scoring", "alerting", "reporting")

CODE_SPAN = re.compile(r"`([^`]+)`")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
ROOT_FILE = re.compile(r"^[\w.-]+\.(md|toml|py|yaml|yml|cfg|ini)$|^Makefile$")


def is_repo_path(text: str) -> bool:
    """A repository path, not a URL, an HTTP route (``/v1/events``), a topic or an event type."""
    if any(c.isspace() for c in text) or "://" in text or text.startswith(("/", "#")):
        return False
    return "/" in text or bool(ROOT_FILE.match(text))


def mentioned_paths(markdown: str) -> set[str]:
    spans = CODE_SPAN.findall(markdown)
    links = [target.split("#", 1)[0] for target in LINK_TARGET.findall(markdown)]
    return {text for text in [*spans, *links] if text and is_repo_path(text)}


def expand(path: str) -> list[str]:
    """``services/<name>/...`` stands for the same room in every one of the five services."""
    if "<name>" in path:
        return [path.replace("<name>", service) for service in SERVICES]
    return [path]


def test_the_doc_names_files() -> None:
    # A guard for the check itself: a doc whose paths all stopped matching would pass vacuously.
    assert len(mentioned_paths(DOC.read_text(encoding="utf-8"))) > 40


def test_every_path_in_the_doc_exists() -> None:
    missing = sorted(
        concrete
        for path in mentioned_paths(DOC.read_text(encoding="utf-8"))
        for concrete in expand(path)
        if not ((ROOT / concrete).is_dir() if concrete.endswith("/") else (ROOT / concrete).exists())
    )
    assert missing == [], f"ARCHITECTURE.md names paths that do not exist: {missing}"


def test_paths_are_told_apart_from_routes_topics_and_event_types() -> None:
    doc = (
        "`services/scoring/domain/nps.py`, [topics](README.md#topics-and-event-types), `.ci/run`, "
        "`Makefile`, `/v1/events`, `nps.survey-requests`, `survey.requested.v1`, `make run`, "
        "[site](https://example.com/a/b), `services/<name>/config.py`"
    )
    assert mentioned_paths(doc) == {
        "services/scoring/domain/nps.py",
        "README.md",
        ".ci/run",
        "Makefile",
        "services/<name>/config.py",
    }
    assert expand("services/<name>/config.py")[0] == "services/trigger/config.py"
