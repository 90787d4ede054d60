"""The verbatims feed's pure parts: the page cursor, an answer's segments and NPS group, and the
exports' CSV cells."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import NpsCategory
from services.reporting.api.export import csv_lines
from services.reporting.domain.spreadsheet import text_cell
from services.reporting.domain.verbatims import (
    InvalidCursor,
    Position,
    categories_of,
    decode_cursor,
    encode_cursor,
    language_of,
    scores_in,
    segments_of,
)

AWARE = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(AWARE, st.uuids())
def test_a_cursor_names_the_position_it_was_made_from(responded_at: datetime, response_id: uuid.UUID) -> None:
    token = encode_cursor(Position(responded_at, response_id))
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(token) == Position(responded_at, response_id)


def test_a_cursor_keeps_the_instant_whatever_the_zone_it_was_given_in() -> None:
    copenhagen = datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    position = decode_cursor(encode_cursor(Position(copenhagen, uuid.UUID(int=7))))
    assert position.responded_at == copenhagen
    assert position.responded_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64!",
        "%%%%",
        "x" * 201,
        "bm9wZQ",  # "nope"
        "MjAyNi0wMS0wMXxub3QtYS11dWlk",  # "2026-01-01|not-a-uuid"
        # a position without a zone: the feed's never is
        "MjAyNi0wMS0wMVQwMDowMDowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDc",
        "__8",  # not UTF-8 once decoded
        "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMA",  # a time and no id
    ],
)
def test_a_token_the_feed_did_not_make_is_refused(token: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(token)


@given(st.text(max_size=300))
def test_decoding_anything_either_gives_a_position_or_refuses_it(token: str) -> None:
    try:
        position = decode_cursor(token)
    except InvalidCursor:
        return
    assert position.responded_at.tzinfo is not None


def test_the_language_is_the_primary_subtag_lower_case() -> None:
    assert [language_of(locale) for locale in ("da-DK", "pt_BR", "EN", "sv", None, "")] == [
        "da",
        "pt",
        "en",
        "sv",
        None,
        None,
    ]


def test_categories_are_the_first_five_values_trimmed_and_non_empty() -> None:
    assert categories_of({"category": " shoes, ,bags,a,b,c,d "}) == ["shoes", "bags", "a", "b", "c"]
    assert categories_of({"categories": "hats"}) == ["hats"]
    assert categories_of({"category": "shoes", "categories": "hats"}) == ["shoes"]
    assert categories_of({}) == []


def test_an_answer_has_the_built_in_segments_its_context_gives_it() -> None:
    attributes = {"country": "DK", "store": " cph ", "category": "shoes,bags", "vip": "yes", "plan": " "}
    assert segments_of("da-DK", "A-17", attributes) == {
        "country": "DK",
        "language": "da",
        "store": "cph",
        "category": "shoes,bags",
        "account": "A-17",
    }
    assert segments_of(None, None, None) == {}


def test_each_group_has_the_scores_nps_category_gives_it() -> None:
    assert scores_in(NpsCategory.PROMOTER) == [9, 10]
    assert scores_in(NpsCategory.PASSIVE) == [7, 8]
    assert scores_in(NpsCategory.DETRACTOR) == list(range(7))


@pytest.mark.parametrize(
    ("written", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Great = fast", "Great = fast"),
        ("", ""),
        (None, ""),
    ],
)
def test_text_a_spreadsheet_would_take_for_a_formula_is_quoted(written: str | None, cell: str) -> None:
    assert text_cell(written) == cell


def test_csv_lines_are_rfc_4180_and_read_back_as_written() -> None:
    rows = [["id", "comment"], ["1", 'Said "hi",\r\nthen left'], ["2", "æøå 👍"]]
    encoded = csv_lines(rows)
    assert encoded.startswith(b"id,comment\r\n")
    assert b'"Said ""hi"",\r\nthen left"' in encoded
    assert list(csv.reader(io.StringIO(encoded.decode("utf-8"), newline=""))) == rows
