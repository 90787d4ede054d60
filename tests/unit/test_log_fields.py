"""Every ``extra=`` of a log call in the platform's code: a key that is also a ``LogRecord``
attribute makes logging raise ``KeyError`` at the call, which turned a committed import into a
500 (``"created"`` in the contact-history import). Checked statically, so that a call at a level
the tests do not log (INFO below the test run's level) cannot hide it."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extra_keys(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "extra" or not isinstance(keyword.value, ast.Dict):
                continue
            for key in keyword.value.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    found.append((key.lineno, key.value))
    return found


def test_no_log_call_passes_a_reserved_logrecord_attribute() -> None:
    clashes = []
    files = [*ROOT.joinpath("services").rglob("*.py"), *ROOT.joinpath("libs").rglob("*.py")]
    assert len(files) > 50
    for path in files:
        for line, key in _extra_keys(ast.parse(path.read_text(), str(path))):
            if key in RESERVED:
                clashes.append(f"{path.relative_to(ROOT)}:{line}: extra key {key!r}")
    assert clashes == []


def test_the_check_sees_a_clash() -> None:
    tree = ast.parse('log.info("x", extra={"created": 1, "tenant_id": "t"})')
    assert [key for _, key in _extra_keys(tree) if key in RESERVED] == ["created"]
