"""Whether a survey link can still be answered, and what counts as a valid answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MIN_SCORE = 0
MAX_SCORE = 10
SCORES = tuple(range(MIN_SCORE, MAX_SCORE + 1))
MAX_COMMENT_LENGTH = 5000


class AnswerState(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    EXPIRED = "expired"


def answer_state(*, responded_at: datetime | None, expires_at: datetime, now: datetime) -> AnswerState:
    """An answer already given wins over expiry: telling someone "thanks, we have it" is kinder."""
    if responded_at is not None:
        return AnswerState.ANSWERED
    if now > expires_at:
        return AnswerState.EXPIRED
    return AnswerState.OPEN


class Problem(StrEnum):
    """Why an answer was refused; the page template turns each into words."""

    SCORE_MISSING = "score_missing"
    SCORE_INVALID = "score_invalid"
    COMMENT_TOO_LONG = "comment_too_long"
    CHOICE_INVALID = "choice_invalid"


@dataclass(frozen=True, slots=True)
class Answer:
    score: int
    comment: str | None


class InvalidAnswer(ValueError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def parse_score(text: str | None) -> int | None:
    """A score from a link or a form field, or ``None`` when it is not one of 0..10."""
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 2:
        return None
    score = int(text)
    return score if MIN_SCORE <= score <= MAX_SCORE else None


def normalise_comment(text: str | None) -> str | None:
    """Blank means no comment. NUL cannot be stored in Postgres text and is never meaningful."""
    if text is None:
        return None
    text = text.replace("\x00", "").replace("\r\n", "\n").strip()
    return text or None


def parse_answer(score_text: str | None, comment_text: str | None) -> Answer:
    if score_text is None or not score_text.strip():
        raise InvalidAnswer(Problem.SCORE_MISSING)
    score = parse_score(score_text)
    if score is None:
        raise InvalidAnswer(Problem.SCORE_INVALID)
    comment = normalise_comment(comment_text)
    if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidAnswer(Problem.COMMENT_TOO_LONG)
    return Answer(score, comment)


def may_change_score(*, responded_at: datetime, now: datetime, grace: timedelta) -> bool:
    """A second score inside the grace period replaces the first (a mis-click, a change of heart);
    after it the score is final."""
    return now <= responded_at + grace


CSAT_SCALE = (1, 2, 3, 4, 5)
EFFORT_SCALE = (1, 2, 3, 4, 5, 6, 7)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The answers after the score; each is optional."""

    comment: str | None
    recommended: bool | None
    csat: int | None
    effort: int | None


def _choice(text: str | None, allowed: tuple[int, ...]) -> int | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 2 or int(text) not in allowed:
        raise InvalidAnswer(Problem.CHOICE_INVALID)
    return int(text)


def parse_follow_up(
    comment_text: str | None, recommended_text: str | None, csat_text: str | None, effort_text: str | None
) -> FollowUp:
    comment = normalise_comment(comment_text)
    if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidAnswer(Problem.COMMENT_TOO_LONG)
    recommended: bool | None
    match (recommended_text or "").strip().lower():
        case "":
            recommended = None
        case "yes":
            recommended = True
        case "no":
            recommended = False
        case _:
            raise InvalidAnswer(Problem.CHOICE_INVALID)
    return FollowUp(comment, recommended, _choice(csat_text, CSAT_SCALE), _choice(effort_text, EFFORT_SCALE))
