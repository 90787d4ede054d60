"""The context a survey request carries: what the customer is known by for routing (their account,
its owner, their attributes from ``customer.upserted.v1``), overlaid by the order's or ticket's own
facts. Pure: the handler passes what it loaded and what the event says.

- The event's own attributes win over the customer's: ``store`` of this order, not of the last.
- Together they stay inside the contract's limit (:data:`MAX_ATTRIBUTES`): the event's are all
  kept, the customer's fill the room that is left, in their stored order.
- The account's owner goes with the account: when the event names another account than the one the
  owner was given for, the owner is left out rather than routed a case that is not theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from libs.common.events import MAX_ATTRIBUTES


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """What is known of a customer's account and attributes (stored, or learnt earlier in a batch)."""

    account_id: str | None = None
    account_owner_email: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


def merged_attributes(customer: Mapping[str, str], own: Mapping[str, str] | None) -> dict[str, str]:
    """The event's attributes over the customer's, at most :data:`MAX_ATTRIBUTES` of them."""
    merged = dict(own or {})
    for key, value in customer.items():
        if len(merged) >= MAX_ATTRIBUTES:
            break
        merged.setdefault(key, value)
    return merged


def account_owner(profile: CustomerProfile, event_account_id: str | None) -> str | None:
    """The owner of the account the event is about, if known."""
    if event_account_id is not None and profile.account_id not in (None, event_account_id):
        return None
    return profile.account_owner_email
