"""Reading a tenant's contact history: a CSV of who was last surveyed when.

Pure: the caller hands in text lines and ``now``. A file is refused as a whole only when its header
makes the rows meaningless; every other problem is a bad row, reported with its line number (the
header is line 1), and reading carries on.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from libs.common.events import Email

if TYPE_CHECKING:
    from _csv import Reader

CUSTOMER_COLUMNS = ("customer_id", "customer")
SURVEYED_COLUMN = "last_surveyed_at"
EMAIL_COLUMN = "email"
DELIMITERS = (",", ";", "\t")
MAX_CUSTOMER_ID = 200
MAX_EMAIL = 320
#: Clocks a little ahead are tolerated: exports are often stamped in a zone east of UTC.
FUTURE_TOLERANCE = timedelta(days=1)

# The same rule as the event contracts, so an address imported here is one intake would accept.
_EMAIL = TypeAdapter(Email)


class RefusedFile(ValueError):
    """The file cannot be read as contact history at all; the message names the problem."""


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One good row: this customer was last surveyed at ``surveyed_at`` (UTC)."""

    line: int
    customer_id: str
    surveyed_at: datetime
    email: str | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Header:
    """Where the columns are, and what the file calls them (problems quote the file's own names)."""

    width: int
    customer: int
    customer_name: str
    surveyed_at: int
    email: int | None


def pick_delimiter(header_line: str) -> str:
    """The delimiter the header uses most. Column names never contain one, so counting is exact on
    a single line, where ``csv.Sniffer`` (which compares several rows) can only guess."""
    counts = {delimiter: header_line.count(delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def read_header(fields: Sequence[str]) -> Header:
    names = [field.strip().lower() for field in fields]
    if any(not _is_text(name) for name in names):
        raise RefusedFile("the file is not UTF-8 text: save it as 'CSV UTF-8' and send it again")
    for name in {*CUSTOMER_COLUMNS, SURVEYED_COLUMN, EMAIL_COLUMN}:
        if names.count(name) > 1:
            raise RefusedFile(f"the header names column {name!r} more than once")
    customer_name = next((name for name in CUSTOMER_COLUMNS if name in names), None)
    missing = []
    if customer_name is None:
        missing.append("'customer_id' (or 'customer')")
    if SURVEYED_COLUMN not in names:
        missing.append(repr(SURVEYED_COLUMN))
    if customer_name is None or missing:
        found = ", ".join(repr(name) for name in names) or "nothing"
        raise RefusedFile(
            f"the header lacks the required column{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)}; it has {found} (columns are separated by ',', ';' or a tab)"
        )
    return Header(
        width=len(names),
        customer=names.index(customer_name),
        customer_name=customer_name,
        surveyed_at=names.index(SURVEYED_COLUMN),
        email=names.index(EMAIL_COLUMN) if EMAIL_COLUMN in names else None,
    )


def parse_row(fields: Sequence[str], header: Header, *, line: int, now: datetime) -> ContactRecord | BadRow:
    """One data row; a bad row names every problem it has, not only the first."""
    if len(fields) != header.width:
        return BadRow(line, f"expected {header.width} columns as in the header, found {len(fields)}")
    problems: list[str] = []

    customer_id = fields[header.customer].strip()
    if not customer_id:
        problems.append(f"{header.customer_name}: missing")
    elif len(customer_id) > MAX_CUSTOMER_ID:
        problems.append(
            f"{header.customer_name}: {len(customer_id)} characters long; at most {MAX_CUSTOMER_ID}"
        )
    elif (unreadable := _unreadable(customer_id)) is not None:
        problems.append(f"{header.customer_name}: {unreadable}")

    surveyed_at: datetime | None = None
    raw_time = fields[header.surveyed_at].strip()
    if not raw_time:
        problems.append(f"{SURVEYED_COLUMN}: missing")
    else:
        surveyed_at = parse_time(raw_time)
        if surveyed_at is None:
            problems.append(f"{SURVEYED_COLUMN}: not a date: {_shown(raw_time)}")
        elif surveyed_at > now + FUTURE_TOLERANCE:
            problems.append(f"{SURVEYED_COLUMN}: in the future: {_shown(raw_time)}")

    email: str | None = None
    if header.email is not None and (raw_email := fields[header.email].strip()):
        email = _valid_email(raw_email)
        if email is None:
            problems.append(f"{EMAIL_COLUMN}: not a valid email address: {_shown(raw_email)}")

    if problems or surveyed_at is None:
        return BadRow(line, "; ".join(problems))
    return ContactRecord(line=line, customer_id=customer_id, surveyed_at=surveyed_at, email=email)


def parse_time(value: str) -> datetime | None:
    """ISO 8601 date or date-time. A date is 00:00 UTC that day; a time without a zone is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_history(lines: Iterable[str], *, now: datetime) -> Iterator[ContactRecord | BadRow]:
    """Read the header now (raising :class:`RefusedFile` if it is unusable) and return the rows as
    a lazy iterator, so a file of any size streams through in constant memory.

    ``lines`` are the file's lines with their line endings, as a file opened with ``newline=""``
    yields them. Blank lines (and rows of empty cells, which spreadsheets like to export) are
    skipped without complaint.
    """
    remaining = iter(lines)
    first = next(remaining, None)
    if first is None or not first.strip():
        raise RefusedFile("the file is empty: its first line must be the header")
    reader = csv.reader(itertools.chain([first], remaining), delimiter=pick_delimiter(first))
    try:
        header = read_header(next(reader))
    except csv.Error as error:
        raise RefusedFile(f"line 1: the header is not valid CSV: {error}") from None
    return _rows(reader, header, now)


def _rows(reader: Reader, header: Header, now: datetime) -> Iterator[ContactRecord | BadRow]:
    # The csv reader counts physical lines; a quoted value may span several, and a row is reported
    # at the line where it starts.
    consumed = 1
    while True:
        start = consumed + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            consumed = reader.line_num
            yield BadRow(start, f"not valid CSV: {error}")
            continue
        consumed = reader.line_num
        if all(not field.strip() for field in fields):
            continue
        yield parse_row(fields, header, line=start, now=now)


def merge_duplicates(records: Iterable[ContactRecord]) -> list[ContactRecord]:
    """One record per customer: the latest survey time, and an email if any of its rows had one
    (the latest row's first). Postgres refuses to upsert one row twice in a single statement."""
    merged: dict[str, ContactRecord] = {}
    for record in records:
        known = merged.get(record.customer_id)
        if known is None:
            merged[record.customer_id] = record
            continue
        later, earlier = (record, known) if record.surveyed_at >= known.surveyed_at else (known, record)
        merged[record.customer_id] = ContactRecord(
            line=later.line,
            customer_id=later.customer_id,
            surveyed_at=later.surveyed_at,
            email=later.email or earlier.email,
        )
    return list(merged.values())


def _valid_email(value: str) -> str | None:
    if len(value) > MAX_EMAIL or _unreadable(value) is not None:
        return None
    try:
        return _EMAIL.validate_python(value)
    except ValidationError:
        return None


def _unreadable(value: str) -> str | None:
    """Why Postgres could not store this text, if it could not."""
    if "\x00" in value:
        return "contains a NUL character"
    if not _is_text(value):
        return "not UTF-8 text"
    return None


def _is_text(value: str) -> bool:
    # Bytes that are not UTF-8 arrive as lone surrogates (the reader decodes with
    # errors="surrogateescape"), and those cannot be encoded back.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
