"""Withdrawing invitations that should no longer go out: an order was cancelled, or a customer
unsubscribed. Pure: the handler loads what is pending, asks these functions what to withdraw,
and records the answer (``survey.cancelled.v1`` per invitation, the customer no longer owed one).

- A cancelled order withdraws the invitations decided from that order, whoever they were for.
- An unsubscribe withdraws every pending invitation of each customer it covers: the customer it
  names and every known customer with the address it names, compared case-insensitively, since a
  person who unsubscribes by address means every account behind it.
- An invitation is withdrawn once, however many of a batch's events would withdraw it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

WithdrawalReason = Literal["cancelled", "unsubscribed"]


@dataclass(frozen=True, slots=True)
class PendingInvitation:
    invitation_id: uuid.UUID
    customer_id: str


@dataclass(frozen=True, slots=True)
class Withdrawal:
    invitation_id: uuid.UUID
    customer_id: str
    reason: WithdrawalReason

    @property
    def event_id(self) -> str:
        """Derived, so a redelivered cancellation announces the same withdrawal, not a second."""
        return f"cancel:{self.invitation_id}"


def withdraw(
    pending: Iterable[PendingInvitation], reason: WithdrawalReason, *, withdrawn_before: Collection[uuid.UUID]
) -> list[Withdrawal]:
    """The withdrawals of ``pending``, each invitation once, none already in ``withdrawn_before``."""
    seen = set(withdrawn_before)
    withdrawals = []
    for invitation in pending:
        if invitation.invitation_id in seen:
            continue
        seen.add(invitation.invitation_id)
        withdrawals.append(Withdrawal(invitation.invitation_id, invitation.customer_id, reason))
    return withdrawals


def unsubscribed_customers(
    customer_id: str | None, email: str | None, emails_by_customer: Mapping[str, str | None]
) -> list[str]:
    """The customers an unsubscribe covers, in a stable order: the one it names, and every known
    customer whose address is the one it names (case-insensitively)."""
    covered = {customer_id} if customer_id else set()
    if email:
        wanted = email.lower()
        covered |= {c for c, known in emails_by_customer.items() if known and known.lower() == wanted}
    return sorted(covered)


def still_outstanding(outstanding: str | None, withdrawals: Iterable[Withdrawal]) -> str | None:
    """The customer's outstanding invitation once ``withdrawals`` are done: none if it was withdrawn
    (under the response clock the customer may then be asked again)."""
    if outstanding is None:
        return None
    return None if any(str(w.invitation_id) == outstanding for w in withdrawals) else outstanding
