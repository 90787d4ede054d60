"""Which invitations a cancellation or an unsubscribe withdraws (services/trigger/domain/withdrawals.py)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.trigger.domain.withdrawals import (
    PendingInvitation,
    Withdrawal,
    still_outstanding,
    unsubscribed_customers,
    withdraw,
)

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def test_each_pending_invitation_is_withdrawn_once_with_the_reason() -> None:
    pending = [PendingInvitation(A, "c1"), PendingInvitation(B, "c2"), PendingInvitation(A, "c1")]
    assert withdraw(pending, "cancelled", withdrawn_before=()) == [
        Withdrawal(A, "c1", "cancelled"),
        Withdrawal(B, "c2", "cancelled"),
    ]


def test_an_invitation_withdrawn_earlier_in_the_batch_is_not_withdrawn_again() -> None:
    pending = [PendingInvitation(A, "c1"), PendingInvitation(B, "c1")]
    assert withdraw(pending, "unsubscribed", withdrawn_before={A}) == [Withdrawal(B, "c1", "unsubscribed")]


def test_a_withdrawal_is_announced_under_a_derived_id() -> None:
    assert Withdrawal(A, "c1", "cancelled").event_id == f"cancel:{A}"


def test_an_unsubscribe_covers_the_named_customer_and_everyone_with_the_address() -> None:
    known = {"c1": "Ann@Example.com", "c2": "ann@example.com", "c3": "bob@example.com", "c4": None}
    assert unsubscribed_customers("c9", "ANN@example.com", known) == ["c1", "c2", "c9"]
    assert unsubscribed_customers(None, "ann@example.com", known) == ["c1", "c2"]
    assert unsubscribed_customers("c3", None, known) == ["c3"]
    assert unsubscribed_customers(None, "nobody@example.com", known) == []


def test_a_withdrawn_outstanding_invitation_is_outstanding_no_more() -> None:
    withdrawn = [Withdrawal(A, "c1", "cancelled")]
    assert still_outstanding(str(A), withdrawn) is None
    assert still_outstanding(str(B), withdrawn) == str(B)
    assert still_outstanding(None, withdrawn) is None


@given(
    st.lists(st.tuples(st.sampled_from([A, B, C]), st.sampled_from(["c1", "c2"]))),
    st.sets(st.sampled_from([A, B, C])),
)
def test_nothing_is_withdrawn_twice_and_nothing_pending_is_missed(
    pending: list[tuple[uuid.UUID, str]], before: set[uuid.UUID]
) -> None:
    withdrawals = withdraw(
        [PendingInvitation(i, c) for i, c in pending], "cancelled", withdrawn_before=before
    )
    ids = [w.invitation_id for w in withdrawals]
    assert len(ids) == len(set(ids))
    assert set(ids) == {i for i, _ in pending} - before
