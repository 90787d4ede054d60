"""Account cohorts for relationship surveys: "ask 10 of our 100 B2B accounts each month".

Accounts are drawn in rounds. A round covers every account once before any account is drawn
again, so with 100 accounts and 10 a month, every account is asked once in ten months. Within a
round the order is a stable shuffle (a hash of tenant, touchpoint, round and account), so the same
accounts are not always first. An account with no contact that may be asked right now (all
unsubscribed, without email, or inside a rest period) is passed over this period and stays in
the round for a later one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass

#: The type of the trigger's own event for a drawn contact (``handlers.common.RelationshipDue``). It
#: never leaves the trigger, so it is not among the public contracts.
RELATIONSHIP_DUE = "relationship.due.v1"


@dataclass(frozen=True, slots=True)
class Draw:
    accounts: list[str]
    round: int


def _shuffle_key(seed: str, round_number: int, account: str) -> bytes:
    return hashlib.sha256(f"{seed}\x1f{round_number}\x1f{account}".encode()).digest()


def draw_accounts(
    accounts: Iterable[str],
    picked_in_round: Collection[str],
    current_round: int,
    wanted: int,
    eligible: Collection[str],
    *,
    seed: str,
) -> list[Draw]:
    """Pick up to ``wanted`` eligible accounts, finishing the current round first.

    Returns one draw per round touched (the current one, and the next if the current one ran out
    of accounts part-way). A round that would start with no eligible account at all is not begun.
    """
    everyone = sorted(set(accounts))
    draws: list[Draw] = []
    remaining = wanted
    round_number = current_round
    already = set(picked_in_round)
    drawn_now: set[str] = set()
    for _ in range(2):
        if remaining <= 0 or not everyone:
            break
        left = [a for a in everyone if a not in already]
        if not left:
            round_number += 1
            already = set()
            left = everyone
        order = sorted(left, key=lambda account: _shuffle_key(seed, round_number, account))
        # An account that just finished the old round is not asked again in the same period.
        picks = [account for account in order if account in eligible and account not in drawn_now][:remaining]
        if picks:
            draws.append(Draw(picks, round_number))
            remaining -= len(picks)
            already |= set(picks)
            drawn_now |= set(picks)
        if len(already) < len(everyone):
            # Accounts left in this round were ineligible now; they wait for a later period.
            break
    return draws
