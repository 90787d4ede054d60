"""What counts as an answer, and when a link can still be answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.survey.domain.answers import (
    MAX_COMMENT_LENGTH,
    Answer,
    AnswerState,
    InvalidAnswer,
    Problem,
    answer_state,
    parse_answer,
    parse_score,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@given(st.integers(0, 10))
def test_every_score_from_0_to_10_is_accepted(score: int) -> None:
    assert parse_answer(str(score), None) == Answer(score, None)
    assert parse_answer(f" {score} ", "  ") == Answer(score, None)


@pytest.mark.parametrize("text", ["11", "-1", "7.5", "seven", "\uff11", "010", "1e1"])
def test_anything_else_is_not_a_score(text: str) -> None:
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer(text, None)
    assert refused.value.problem is Problem.SCORE_INVALID
    assert parse_score(text) is None


@pytest.mark.parametrize("text", [None, "", "   "])
def test_a_missing_score_is_named_as_missing(text: str | None) -> None:
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer(text, "great")
    assert refused.value.problem is Problem.SCORE_MISSING


def test_comments_are_kept_trimmed_and_limited() -> None:
    assert (
        parse_answer("9", "  Fast delivery\r\nand kind staff \x00 ").comment
        == "Fast delivery\nand kind staff"
    )
    assert parse_answer("9", "x" * MAX_COMMENT_LENGTH).comment == "x" * MAX_COMMENT_LENGTH
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer("9", "x" * (MAX_COMMENT_LENGTH + 1))
    assert refused.value.problem is Problem.COMMENT_TOO_LONG


def test_a_link_is_open_until_it_expires_or_is_answered() -> None:
    expires = NOW + timedelta(days=1)
    assert answer_state(responded_at=None, expires_at=expires, now=NOW) is AnswerState.OPEN
    assert answer_state(responded_at=None, expires_at=expires, now=expires) is AnswerState.OPEN
    after = expires + timedelta(seconds=1)
    assert answer_state(responded_at=None, expires_at=expires, now=after) is AnswerState.EXPIRED
    assert answer_state(responded_at=NOW, expires_at=expires, now=after) is AnswerState.ANSWERED
