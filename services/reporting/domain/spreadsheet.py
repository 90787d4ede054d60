"""CSV cells as a spreadsheet will read them: the reports' exports all write text through here."""

from __future__ import annotations

#: What makes a spreadsheet take a cell for a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str | None) -> str:
    """Text a tenant or a customer wrote (a comment, a name, an attribute, a root cause): a leading
    ``=``, ``+``, ``-``, ``@``, tab or carriage return would make it a formula, so it is quoted with
    an apostrophe (OWASP's advice against CSV injection). None is an empty cell."""
    if value is None:
        return ""
    return f"'{value}" if value[:1] in _FORMULA_STARTS else value
