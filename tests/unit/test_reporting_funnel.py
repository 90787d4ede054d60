"""The funnel and the follow-up questions in a summary."""

from __future__ import annotations

from services.reporting.domain.summary import FUNNEL_STEPS, FollowUpAnswers, Funnel, Summary


def test_the_funnel_lists_every_step_and_adds_up_across_touchpoints() -> None:
    first = Funnel.from_counts({"sent": 3, "opened": 2, "responded": 1, "someday": 7})
    second = Funnel.from_counts({"sent": 1, "bounced": 1})
    total = (Summary(funnel=first) + Summary(funnel=second)).funnel
    assert list(total.as_dict()) == list(FUNNEL_STEPS)
    assert total.as_dict() == {
        "sent": 4,
        "opened": 2,
        "machine_opened": 0,
        "clicked": 0,
        "responded": 1,
        "reminded": 0,
        "bounced": 1,
        "unsubscribed": 0,
        "expired": 0,
        "failed": 0,
    }


def test_follow_up_shares_and_averages_count_only_those_who_answered_the_question() -> None:
    answers = FollowUpAnswers(recommended_yes=1, recommended_answers=4, csat_total=9, csat_answers=2)
    assert answers.recommended_share == 0.25
    assert answers.average_csat == 4.5
    assert answers.average_effort is None
    both = answers + FollowUpAnswers(
        recommended_yes=1, recommended_answers=1, effort_total=3, effort_answers=1
    )
    assert both.recommended_share == 0.4
    assert both.average_effort == 3.0
    assert FollowUpAnswers().recommended_share is None
