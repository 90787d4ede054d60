"""Account cohorts: every account once per round, rest periods respected."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from services.trigger.domain.cohorts import draw_accounts

ACCOUNTS = [f"acct-{i:03d}" for i in range(100)]


def run_periods(
    accounts: list[str], per_period: int, periods: int, eligible: set[str] | None = None
) -> list[list[str]]:
    picked_in_round: set[str] = set()
    current_round = 0
    history = []
    for _ in range(periods):
        draws = draw_accounts(
            accounts,
            picked_in_round,
            current_round,
            per_period,
            eligible if eligible is not None else set(accounts),
            seed="tenant:relationship",
        )
        period = []
        for draw in draws:
            if draw.round != current_round:
                current_round, picked_in_round = draw.round, set()
            picked_in_round |= set(draw.accounts)
            period += draw.accounts
        history.append(period)
    return history


def test_ten_of_a_hundred_a_month_asks_everyone_once_in_ten_months() -> None:
    history = run_periods(ACCOUNTS, 10, 10)
    assert all(len(month) == 10 for month in history)
    assert sorted(a for month in history for a in month) == ACCOUNTS


def test_the_next_round_starts_only_when_every_account_was_asked() -> None:
    history = run_periods(ACCOUNTS[:25], 10, 5)
    first_round = history[0] + history[1] + history[2][:5]
    assert sorted(first_round) == ACCOUNTS[:25]
    assert len(history[2]) == 10  # the third month finishes round one and begins round two


def test_ineligible_accounts_wait_and_are_not_skipped_for_good() -> None:
    resting = set(ACCOUNTS[:5])
    first = draw_accounts(ACCOUNTS, set(), 0, 100, set(ACCOUNTS) - resting, seed="s")
    assert len(first) == 1 and not resting & set(first[0].accounts) and len(first[0].accounts) == 95
    later = draw_accounts(ACCOUNTS, set(first[0].accounts), 0, 10, set(ACCOUNTS), seed="s")
    assert sorted(later[0].accounts) == sorted(resting) and later[0].round == 0


def test_no_accounts_or_nobody_eligible_draws_nothing() -> None:
    assert draw_accounts([], set(), 0, 10, set(), seed="s") == []
    assert draw_accounts(ACCOUNTS, set(), 0, 10, set(), seed="s") == []


@given(
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=15),
    st.integers(min_value=1, max_value=30),
)
def test_no_account_repeats_before_all_were_asked(size: int, per_period: int, periods: int) -> None:
    accounts = ACCOUNTS[:size]
    asked = [a for month in run_periods(accounts, per_period, periods) for a in month]
    full_rounds, rest = divmod(len(asked), size)
    for number in range(full_rounds):
        assert sorted(asked[number * size : (number + 1) * size]) == accounts
    assert max(Counter(asked[full_rounds * size :]).values(), default=1) == 1
    assert rest == len(asked) - full_rounds * size


@given(
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=1, max_value=15),
    st.integers(min_value=1, max_value=20),
)
def test_no_account_is_asked_twice_in_one_period(size: int, per_period: int, periods: int) -> None:
    for month in run_periods(ACCOUNTS[:size], per_period, periods):
        assert len(month) == len(set(month))
        assert len(month) == min(per_period, size)


def test_a_period_that_finishes_a_round_begins_the_next_with_other_accounts() -> None:
    # Five accounts, two a period: the third period takes the last of round one and one more.
    history = run_periods(ACCOUNTS[:5], 2, 3)
    assert len(set(history[2])) == 2
