"""Reporting's summary maths and how it merges follow-up case events that arrive in any order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.cases import CaseFacts, merge
from services.reporting.domain.summary import CaseCounts, ScoreCounts, Summary, response_rate


def test_response_rate_is_answers_per_invitation_sent() -> None:
    assert response_rate(1, 2) == 0.5
    assert response_rate(0, 7) == 0
    assert response_rate(3, 3) == 1


def test_without_invitations_there_is_no_response_rate() -> None:
    assert response_rate(0, 0) is None
    assert response_rate(4, 0) is None


def test_scores_are_bucketed_like_nps_and_give_its_score() -> None:
    counts = ScoreCounts.from_histogram({10: 2, 9: 1, 8: 1, 7: 0, 6: 1, 0: 0})
    assert (counts.promoters, counts.passives, counts.detractors, counts.responses) == (3, 1, 1, 5)
    assert counts.nps == 40


def test_all_detractors_score_minus_100_and_no_answers_have_no_score() -> None:
    assert ScoreCounts.from_histogram({3: 1}).nps == -100
    assert ScoreCounts().nps is None


@given(st.dictionaries(st.integers(min_value=0, max_value=10), st.integers(min_value=0, max_value=1000)))
def test_every_answer_lands_in_exactly_one_bucket(histogram: dict[int, int]) -> None:
    counts = ScoreCounts.from_histogram(histogram)
    assert counts.responses == sum(histogram.values())
    assert counts.nps is None or -100 <= counts.nps <= 100


def test_open_and_contacted_cases_are_open_and_breaches_count_until_resolved() -> None:
    counts = CaseCounts.from_groups(
        [
            ("open", False, 2),
            ("open", True, 1),
            ("contacted", True, 3),
            ("contacted", False, 1),
            ("resolved", True, 5),
            ("resolved", False, 4),
        ]
    )
    assert counts == CaseCounts(open=7, breached=4, resolved=9)


def test_a_summary_adds_up_its_touchpoints() -> None:
    first = Summary(ScoreCounts(promoters=1), invitations_sent=4, cases=CaseCounts(open=1))
    second = Summary(ScoreCounts(detractors=1), invitations_sent=0, cases=CaseCounts(breached=1, open=1))
    total = first + second
    assert total.scores == ScoreCounts(promoters=1, detractors=1)
    assert total.invitations_sent == 4
    assert total.response_rate == 0.5
    assert total.cases == CaseCounts(open=2, breached=1, resolved=0)
    assert second.response_rate is None


# --- Merging case facts ---------------------------------------------------------------------------

OPENED_AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DUE_AT = OPENED_AT + timedelta(hours=48)
OPENED = CaseFacts(
    status="open",
    breached=False,
    updated_at=OPENED_AT,
    touchpoint="support-ticket",
    opened_at=OPENED_AT,
    due_at=DUE_AT,
)


def update(status: str, breached: bool, minutes: int) -> CaseFacts:
    return CaseFacts(status=status, breached=breached, updated_at=OPENED_AT + timedelta(minutes=minutes))


def fold(facts: list[CaseFacts]) -> CaseFacts:
    case = facts[0]
    for fact in facts[1:]:
        case = merge(case, fact)
    return case


def test_an_update_before_its_opening_keeps_both_halves() -> None:
    case = fold([update("contacted", True, 30), OPENED])
    assert (case.status, case.breached) == ("contacted", True)
    assert (case.touchpoint, case.opened_at, case.due_at) == ("support-ticket", OPENED_AT, DUE_AT)


def test_an_older_update_does_not_undo_a_newer_one() -> None:
    case = fold([OPENED, update("resolved", False, 90), update("contacted", True, 30)])
    assert (case.status, case.breached, case.updated_at) == (
        "resolved",
        False,
        OPENED_AT + timedelta(minutes=90),
    )


def test_an_update_at_the_same_instant_is_applied() -> None:
    assert fold([update("contacted", False, 30), update("contacted", True, 30)]).breached is True
    assert fold([update("resolved", False, 0), OPENED]).status == "resolved"


updates = st.builds(
    update,
    st.sampled_from(["open", "contacted", "resolved"]),
    st.booleans(),
    st.integers(min_value=0, max_value=10_000),
)


@given(st.lists(updates, max_size=6), st.randoms())
def test_any_arrival_order_gives_the_same_case(history: list[CaseFacts], shuffler: random.Random) -> None:
    facts = [OPENED, *history]
    shuffled = list(facts)
    shuffler.shuffle(shuffled)
    assert fold(shuffled) == fold(facts)
    latest = max(facts, key=lambda fact: fact.precedence)
    assert fold(shuffled).status == latest.status
    assert fold(shuffled).touchpoint == "support-ticket"
