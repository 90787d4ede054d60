"""Reading contact-history CSVs: good rows in every accepted form, each bad row with its line
number, and the files that are refused whole."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.trigger.domain.history import (
    BadRow,
    ContactRecord,
    RefusedFile,
    merge_duplicates,
    read_history,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def read(text: str) -> list[ContactRecord | BadRow]:
    """As the import reads a file: lines with their endings."""
    return list(read_history(io.StringIO(text, newline=""), now=NOW))


def good(rows: list[ContactRecord | BadRow]) -> list[ContactRecord]:
    return [row for row in rows if isinstance(row, ContactRecord)]


def bad(rows: list[ContactRecord | BadRow]) -> list[str]:
    return [str(row) for row in rows if isinstance(row, BadRow)]


def test_dates_date_times_with_a_zone_and_naive_ones_are_read_as_utc() -> None:
    rows = read(
        "customer_id,last_surveyed_at\n"
        "c1,2026-03-14\n"
        "c2,2026-03-14T10:30:00+02:00\n"
        "c3,2026-03-14T10:30:00Z\n"
        "c4,2026-03-14 10:30\n"
        "c5, 2026-03-14T10:30:00 \n"
    )
    assert bad(rows) == []
    assert [(row.line, row.customer_id, row.surveyed_at) for row in good(rows)] == [
        (2, "c1", datetime(2026, 3, 14, tzinfo=UTC)),
        (3, "c2", datetime(2026, 3, 14, 8, 30, tzinfo=UTC)),
        (4, "c3", datetime(2026, 3, 14, 10, 30, tzinfo=UTC)),
        (5, "c4", datetime(2026, 3, 14, 10, 30, tzinfo=UTC)),
        (6, "c5", datetime(2026, 3, 14, 10, 30, tzinfo=UTC)),
    ]


def test_customer_is_accepted_for_customer_id_and_header_names_ignore_case_and_order() -> None:
    [row] = read("Email;Last_Surveyed_At;Customer\njane@example.com;2026-01-02;c-7\n")
    assert row == ContactRecord(
        line=2, customer_id="c-7", surveyed_at=datetime(2026, 1, 2, tzinfo=UTC), email="jane@example.com"
    )


def test_an_empty_email_is_no_email_and_unknown_columns_are_ignored() -> None:
    [row] = read("customer_id,segment,last_surveyed_at,email\nc1,gold,2026-01-02,\n")
    assert isinstance(row, ContactRecord)
    assert (row.customer_id, row.email) == ("c1", None)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (",2026-01-02,", "customer_id: missing"),
        ("   ,2026-01-02,", "customer_id: missing"),
        ("c1,2024-13-45,", "last_surveyed_at: not a date: '2024-13-45'"),
        ("c1,yesterday,", "last_surveyed_at: not a date: 'yesterday'"),
        ("c1,,", "last_surveyed_at: missing"),
        ("c1,2026-11-25,", "last_surveyed_at: in the future: '2026-11-25'"),
        ("x" * 201 + ",2026-01-02,", "customer_id: 201 characters long; at most 200"),
        ("c1,2026-01-02,jane@", "email: not a valid email address: 'jane@'"),
        ("c1,2026-01-02,not an email", "email: not a valid email address: 'not an email'"),
        ("c1,2026-01-02", "expected 3 columns as in the header, found 2"),
        ("c1,2026-01-02,jane@example.com,extra", "expected 3 columns as in the header, found 4"),
        ("c\x001,2026-01-02,", "customer_id: contains a NUL character"),
        (",someday,", "customer_id: missing; last_surveyed_at: not a date: 'someday'"),
    ],
)
def test_each_bad_row_is_reported_with_its_line_and_the_problem(row: str, problem: str) -> None:
    rows = read(f"customer_id,last_surveyed_at,email\nc0,2026-01-01,\n{row}\nc2,2026-01-03,\n")
    assert bad(rows) == [f"line 3: {problem}"]
    assert [record.customer_id for record in good(rows)] == ["c0", "c2"]


def test_a_time_up_to_a_day_ahead_is_accepted_as_clock_skew() -> None:
    ahead = (NOW + timedelta(hours=23)).isoformat()
    [row] = read(f"customer_id,last_surveyed_at\nc1,{ahead}\n")
    assert isinstance(row, ContactRecord)


def test_reading_carries_on_past_every_bad_row() -> None:
    rows = read(
        "customer_id,last_surveyed_at\n"
        "c1,2026-01-01\n"
        ",2026-01-01\n"
        "c3,13/01/2026\n"
        "c4,2026-01-04\n"
        "c5\n"
        "c6,2026-01-06\n"
    )
    assert bad(rows) == [
        "line 3: customer_id: missing",
        "line 4: last_surveyed_at: not a date: '13/01/2026'",
        "line 6: expected 2 columns as in the header, found 1",
    ]
    assert [row.customer_id for row in good(rows)] == ["c1", "c4", "c6"]


def test_blank_lines_are_skipped_and_later_lines_keep_their_numbers() -> None:
    rows = read("customer_id,last_surveyed_at\r\n\r\nc1,2026-01-01\r\n,,\r\n \r\nc2,nope\r\n")
    assert [row.line for row in good(rows)] == [3]
    assert bad(rows) == ["line 6: last_surveyed_at: not a date: 'nope'"]


def test_a_quoted_value_over_several_lines_is_reported_at_the_line_it_starts() -> None:
    rows = read('customer_id,last_surveyed_at\n"c\n1",2026-01-01\n"c2","not\na date"\nc3,2026-01-03\n')
    assert bad(rows) == ["line 4: last_surveyed_at: not a date: 'not\\na date'"]
    assert [(row.line, row.customer_id) for row in good(rows)] == [(2, "c\n1"), (6, "c3")]


def test_a_byte_order_mark_is_not_part_of_the_first_column_name() -> None:
    raw = "\ufeffcustomer_id,last_surveyed_at\nc1,2026-01-01\n".encode()
    lines = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    [row] = list(read_history(lines, now=NOW))
    assert isinstance(row, ContactRecord)


def test_bytes_that_are_not_utf8_make_a_bad_row_not_a_crash() -> None:
    raw = b"customer_id,last_surveyed_at\nc1,2026-01-01\nJ\xf8rgen,2026-01-02\nc3,2026-01-03\n"
    lines = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", errors="surrogateescape", newline="")
    rows = list(read_history(lines, now=NOW))
    assert bad(rows) == ["line 3: customer_id: not UTF-8 text"]
    assert [row.customer_id for row in good(rows)] == ["c1", "c3"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_found_from_the_header(delimiter: str) -> None:
    text = delimiter.join(["customer_id", "last_surveyed_at", "email"]) + "\n"
    text += delimiter.join(["c,1" if delimiter != "," else '"c,1"', "2026-01-01", "a@b.example"]) + "\n"
    [row] = read(text)
    assert isinstance(row, ContactRecord)
    assert (row.customer_id, row.email) == ("c,1", "a@b.example")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("customer_id,email", "lacks the required column 'last_surveyed_at'; it has 'customer_id', 'email'"),
        ("id,last_surveyed_at", "lacks the required column 'customer_id' (or 'customer')"),
        ("id,when", "lacks the required columns 'customer_id' (or 'customer') and 'last_surveyed_at'"),
        ("customer_id|last_surveyed_at", "it has 'customer_id|last_surveyed_at'"),
        ("customer_id,customer_id,last_surveyed_at", "column 'customer_id' more than once"),
    ],
)
def test_a_header_without_a_required_column_refuses_the_file(header: str, message: str) -> None:
    with pytest.raises(RefusedFile) as refused:
        read(f"{header}\nc1,2026-01-01\n")
    assert message in str(refused.value)


@pytest.mark.parametrize("text", ["", "\n", "   \r\n"])
def test_an_empty_file_is_refused(text: str) -> None:
    with pytest.raises(RefusedFile, match="empty"):
        read(text)


def test_a_utf16_file_is_refused_as_not_utf8() -> None:
    raw = "customer_id,last_surveyed_at\nc1,2026-01-01\n".encode("utf-16")
    lines = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", errors="surrogateescape", newline="")
    with pytest.raises(RefusedFile, match="not UTF-8"):
        read_history(lines, now=NOW)


def test_the_header_is_checked_at_once_and_rows_are_read_lazily() -> None:
    def endless() -> itertools.chain[str]:
        return itertools.chain(
            ["customer_id,last_surveyed_at\n"], (f"c{n},2026-01-01\n" for n in itertools.count())
        )

    rows = read_history(endless(), now=NOW)
    assert [row.line for row in itertools.islice(rows, 3)] == [2, 3, 4]
    with pytest.raises(RefusedFile):
        read_history(itertools.chain(["nothing useful\n"], endless()), now=NOW)


customer_ids = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00\r\n"),
    min_size=1,
    max_size=200,
).filter(lambda value: value.strip() == value and value != "")
times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2026, 11, 1), timezones=st.just(UTC)
).map(lambda value: value.replace(microsecond=0))


@given(
    rows=st.lists(st.tuples(customer_ids, times), min_size=1, max_size=20),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_any_file_a_csv_writer_makes_reads_back_row_for_row(
    rows: list[tuple[str, datetime]], delimiter: str
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["customer_id", "last_surveyed_at"])
    writer.writerows((customer, at.isoformat()) for customer, at in rows)
    read_back = read(out.getvalue())
    assert bad(read_back) == []
    assert [(row.customer_id, row.surveyed_at) for row in good(read_back)] == rows


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), times, st.sampled_from([None, "x@y.example"])),
        max_size=30,
    )
)
def test_merging_a_batch_keeps_one_row_per_customer_with_its_latest_time(
    rows: list[tuple[str, datetime, str | None]],
) -> None:
    records = [
        ContactRecord(line=n, customer_id=customer, surveyed_at=at, email=email)
        for n, (customer, at, email) in enumerate(rows, start=2)
    ]
    merged = merge_duplicates(records)
    assert sorted(record.customer_id for record in merged) == sorted({customer for customer, _, _ in rows})
    for record in merged:
        group = [r for r in records if r.customer_id == record.customer_id]
        assert record.surveyed_at == max(r.surveyed_at for r in group)
        assert (record.email is None) == all(r.email is None for r in group)
