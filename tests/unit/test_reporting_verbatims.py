"""The verbatims feed's pure parts: the page cursor, an answer's segments and NPS group, what the
read model keeps for them, the parameters' rules, and the exports' CSV cells."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import Money, NpsCategory, SurveyContext, SurveyResponded
from services.reporting.api.export import csv_lines
from services.reporting.api.params import segment_of
from services.reporting.api.verbatims import period_of
from services.reporting.domain.cases import CaseFacts, merge
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
from services.reporting.handlers.read_model import _answer
from services.reporting.repository import Segment

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
        encode_cursor(Position(datetime(2026, 1, 1, tzinfo=UTC), uuid.UUID(int=7))) + "\n",
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


def _responded(context: SurveyContext | None) -> SurveyResponded:
    return SurveyResponded(
        response_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        customer_id="customer-1",
        email="jane@shop.example",
        touchpoint="checkout",
        score=4,
        comment="Late",
        responded_at=datetime(2026, 3, 1, tzinfo=UTC),
        context=context,
    )


def test_an_answer_keeps_its_customer_and_its_context_snapshot() -> None:
    context = SurveyContext(
        locale="da-DK",
        account_id="A-17",
        attributes={"country": "DK"},
        spend_12m=[Money(amount_minor=123450, currency="DKK")],
    )
    row = _answer(uuid.uuid4(), _responded(context))
    assert (row.customer_id, row.locale, row.account_id, row.attributes) == (
        "customer-1",
        "da-DK",
        "A-17",
        {"country": "DK"},
    )
    assert row.spend_12m == [{"amount_minor": 123450, "currency": "DKK"}]
    bare = _answer(uuid.uuid4(), _responded(None))
    assert (bare.customer_id, bare.locale, bare.attributes, bare.spend_12m) == (
        "customer-1",
        None,
        None,
        None,
    )


def test_a_case_keeps_the_answer_of_its_opening_whatever_the_order() -> None:
    response_id = uuid.uuid4()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    opening = CaseFacts(status="open", breached=False, updated_at=at, opened_at=at, response_id=response_id)
    update = CaseFacts(status="resolved", breached=False, updated_at=at + timedelta(hours=1))
    assert merge(opening, update).response_id == response_id
    assert merge(update, opening).response_id == response_id


def _refused(call: Callable[[], object]) -> str:
    with pytest.raises(RequestValidationError) as refused:
        call()
    (error,) = refused.value.errors()
    return ".".join(error["loc"])


def test_the_period_defaults_to_the_90_days_up_to_tomorrow_and_refuses_what_makes_no_sense() -> None:
    tenant_id = uuid.uuid4()
    period = period_of(tenant_id, None, None, None)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert period.until == datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    assert period.until - period.since == timedelta(days=90)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert period_of(tenant_id, start, start + timedelta(days=1096), None).since == start
    assert _refused(lambda: period_of(tenant_id, start, start, None)) == "query.since"
    assert _refused(lambda: period_of(tenant_id, start, start + timedelta(days=1097), None)) == "query.since"
    assert _refused(lambda: period_of(tenant_id, None, datetime(1, 1, 2, tzinfo=UTC), None)) == "query.until"


@pytest.mark.parametrize(
    "text", ["country", ":DK", "Country:DK", "country\n:DK", "country:", "country:a\x01b", "c:" + "x" * 201]
)
def test_a_segment_is_a_dimension_and_a_value(text: str) -> None:
    assert _refused(lambda: segment_of(text)) == "query.segment"


def test_a_segment_value_may_hold_a_colon() -> None:
    assert segment_of("store:cph:1") == Segment("store", "cph:1")
