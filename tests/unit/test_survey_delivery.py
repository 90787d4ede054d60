"""When an invitation is tried again, and when it is given up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.survey.domain.delivery import Failed, Retry, RetryPolicy, after_failure, before_sending, scrub

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=8, base=timedelta(seconds=30), cap=timedelta(hours=1))

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 50),
    base=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(minutes=10)),
    cap=st.timedeltas(min_value=timedelta(minutes=10), max_value=timedelta(days=1)),
)


@given(policies, st.integers(1, 200))
def test_backoff_grows_and_never_exceeds_the_cap(policy: RetryPolicy, attempts: int) -> None:
    delay = policy.delay(attempts)
    assert policy.base <= delay <= policy.cap
    assert policy.delay(attempts + 1) >= delay


def test_backoff_doubles_per_attempt_until_capped() -> None:
    assert [POLICY.delay(n).total_seconds() for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]


def test_a_temporary_failure_is_retried_later() -> None:
    outcome = after_failure(attempts=2, permanent=False, error="SMTP 451: try later", now=NOW, policy=POLICY)
    assert outcome == Retry(NOW + timedelta(seconds=60), "SMTP 451: try later")


def test_a_permanent_failure_is_not_retried() -> None:
    outcome = after_failure(
        attempts=1, permanent=True, error="SMTP 550: no such user", now=NOW, policy=POLICY
    )
    assert outcome == Failed("SMTP 550: no such user")


@given(st.integers(8, 100))
def test_temporary_failures_give_up_after_the_maximum_attempts(attempts: int) -> None:
    outcome = after_failure(attempts=attempts, permanent=False, error="timeout", now=NOW, policy=POLICY)
    assert isinstance(outcome, Failed)
    assert "8" in outcome.error or str(attempts) in outcome.error


def test_stored_errors_never_hold_an_address() -> None:
    outcome = after_failure(
        attempts=1,
        permanent=True,
        error="SMTP 550: 5.1.1 <jane.doe+x@example.com>: Recipient address rejected",
        now=NOW,
        policy=POLICY,
    )
    assert isinstance(outcome, Failed)
    assert "@" not in outcome.error and "jane" not in outcome.error
    assert "Recipient address rejected" in outcome.error
    assert len(scrub("x" * 10_000)) == 500


def test_an_expired_invitation_is_not_sent() -> None:
    verdict = before_sending(attempts=1, expires_at=NOW - timedelta(seconds=1), now=NOW, policy=POLICY)
    assert isinstance(verdict, Failed)


def test_an_invitation_claimed_too_often_without_outcome_is_given_up() -> None:
    later = NOW + timedelta(days=1)
    assert before_sending(attempts=8, expires_at=later, now=NOW, policy=POLICY) is None
    assert isinstance(before_sending(attempts=9, expires_at=later, now=NOW, policy=POLICY), Failed)
