"""Spend in cells: the 12-month spend snapshot each answer carries (``context.spend_12m``), summed
per cell, currency and NPS group, so that revenue at risk adds up over days and segments as the
distribution does.

A snapshot is what the customer had spent when asked, per currency, in minor units, never
converted. It belongs to the answer's first version, as its date and segments do: a revision that
moves the answer to another group moves that same snapshot out of the old group and into the new
one, in the very cells the answer was counted in, so the spend in a cell always equals the sum of
its answers' snapshots per group. Answers without a snapshot add nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.scoring.domain.cells import CellKey, CountedAnswer, cells_of
from services.scoring.domain.nps import Category
from services.scoring.domain.revisions import HeldAnswer, latest

#: One answer's snapshot: (currency, amount in minor units), one per currency, in currency order.
Snapshot = tuple[tuple[str, int], ...]


def snapshot_of(amounts: Iterable[tuple[str, int]] | None) -> Snapshot:
    """The spend as a snapshot: amounts of one currency summed, zeros left out, in currency order."""
    summed: dict[str, int] = {}
    for currency, amount in amounts or ():
        summed[currency] = summed.get(currency, 0) + amount
    return tuple(sorted((currency, amount) for currency, amount in summed.items() if amount))


@dataclass(frozen=True, slots=True)
class GroupSpend:
    """Spend of one currency per NPS group, in minor units; signed when it is a change."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @classmethod
    def of(cls, category: Category, amount: int) -> GroupSpend:
        match category:
            case Category.PROMOTER:
                return cls(promoters=amount)
            case Category.PASSIVE:
                return cls(passives=amount)
            case Category.DETRACTOR:
                return cls(detractors=amount)

    def __add__(self, other: GroupSpend) -> GroupSpend:
        return GroupSpend(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )

    @property
    def is_empty(self) -> bool:
        return self.promoters == self.passives == self.detractors == 0

    @property
    def total(self) -> int:
        return self.promoters + self.passives + self.detractors


#: A cell's spend (or its change) per currency.
CellSpend = dict[str, GroupSpend]
NOTHING = GroupSpend()


def _add(into: dict[CellKey, CellSpend], keys: Iterable[CellKey], spend: Mapping[str, GroupSpend]) -> None:
    for key in keys:
        held = into.setdefault(key, {})
        for currency, change in spend.items():
            held[currency] = held.get(currency, NOTHING) + change


def _of(category: Category, snapshot: Snapshot, sign: int = 1) -> CellSpend:
    return {currency: GroupSpend.of(category, sign * amount) for currency, amount in snapshot}


def _without_zeros(changes: Mapping[CellKey, CellSpend]) -> dict[CellKey, CellSpend]:
    kept = {
        key: {currency: change for currency, change in spend.items() if not change.is_empty}
        for key, spend in changes.items()
    }
    return {key: spend for key, spend in kept.items() if spend}


def first_spend(tenant_id: uuid.UUID, counted: CountedAnswer) -> dict[CellKey, CellSpend]:
    """A new answer adds its snapshot to its group in each of its cells."""
    answer = counted.answer
    changes: dict[CellKey, CellSpend] = {}
    keys = cells_of(tenant_id, answer.touchpoint, counted.day, counted.segments)
    _add(changes, keys, _of(answer.category, counted.spend))
    return _without_zeros(changes)


def revised_spend(
    tenant_id: uuid.UUID, held: CountedAnswer, arriving: HeldAnswer
) -> dict[CellKey, CellSpend] | None:
    """What a newer version does to the spend: the held snapshot leaves the old group in the first
    count's cells and enters the new group in the same cells of the arriving touchpoint. ``None``
    when the version is not newer; no cells when group and touchpoint stay."""
    old = held.answer
    if latest(old, arriving) is old:
        return None
    changes: dict[CellKey, CellSpend] = {}
    _add(
        changes,
        cells_of(tenant_id, old.touchpoint, held.day, held.segments),
        _of(old.category, held.spend, -1),
    )
    _add(
        changes,
        cells_of(tenant_id, arriving.touchpoint, held.day, held.segments),
        _of(arriving.category, held.spend),
    )
    return _without_zeros(changes)


@dataclass(slots=True)
class SpendRollup:
    """A batch's spend changes summed per cell and currency."""

    changes: dict[CellKey, CellSpend] = field(default_factory=dict)

    def add(self, changes: Mapping[CellKey, CellSpend]) -> None:
        for key, spend in changes.items():
            _add(self.changes, (key,), spend)

    def changed(self) -> dict[CellKey, CellSpend]:
        """The cells and currencies whose spend changed (moves inside a batch can cancel out)."""
        return _without_zeros(self.changes)
