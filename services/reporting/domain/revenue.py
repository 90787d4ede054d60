"""Revenue at risk: what the unhappy customers spent, weighted by how likely they are to leave.

    revenue at risk = detractors' 12-month spend x P(detractor churns)
                    + passives' 12-month spend x P(passive churns)

per currency, never converted. The spend is each answer's snapshot at survey time (what the
customer had spent with the tenant in the 12 months before being asked), summed per cell by
scoring; the probabilities are the tenant's setting. Amounts are kept in minor units (cents,
øre): the risk is rounded to a whole minor unit (half to even), and shown in major units with the
currency's precision (babel's ``get_currency_precision``: 2 for DKK, 0 for JPY, 3 for KWD).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from babel.numbers import get_currency_precision

#: Without a setting: a modest placeholder (not a measured rate) until the tenant sets its own
#: churn rates (README); passives count only once the tenant says so.
DEFAULT_DETRACTOR_CHURN = 0.3
DEFAULT_PASSIVE_CHURN = 0.0


@dataclass(frozen=True, slots=True)
class ChurnProbability:
    detractor: float = DEFAULT_DETRACTOR_CHURN
    passive: float = DEFAULT_PASSIVE_CHURN

    def __post_init__(self) -> None:
        for name in ("detractor", "passive"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"a churn probability is 0 to 1, not {getattr(self, name)} ({name})")


@dataclass(frozen=True, slots=True)
class Spend:
    """One currency's 12-month spend of the detractors and of the passives, in minor units."""

    currency: str
    detractors: int = 0
    passives: int = 0


@dataclass(frozen=True, slots=True)
class Risk:
    currency: str
    detractors_minor: int
    passives_minor: int
    at_risk_minor: int
    #: In major units, as decimals with the currency's precision.
    detractors: Decimal
    passives: Decimal
    at_risk: Decimal


def precision_of(currency: str) -> int:
    return int(get_currency_precision(currency))


def major(amount_minor: int, currency: str) -> Decimal:
    """Minor units as major units, exactly, with the currency's number of decimals."""
    digits = precision_of(currency)
    return (Decimal(amount_minor).scaleb(-digits)).quantize(Decimal(1).scaleb(-digits))


def at_risk_minor(spend: Spend, probability: ChurnProbability) -> int:
    """The risk in minor units: exact decimal products (a float's shortest form), rounded once."""
    exact = Decimal(spend.detractors) * Decimal(repr(probability.detractor)) + Decimal(
        spend.passives
    ) * Decimal(repr(probability.passive))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def risk_of(spend: Spend, probability: ChurnProbability) -> Risk:
    risk = at_risk_minor(spend, probability)
    return Risk(
        currency=spend.currency,
        detractors_minor=spend.detractors,
        passives_minor=spend.passives,
        at_risk_minor=risk,
        detractors=major(spend.detractors, spend.currency),
        passives=major(spend.passives, spend.currency),
        at_risk=major(risk, spend.currency),
    )


def risks(spend: Iterable[Spend], probability: ChurnProbability) -> list[Risk]:
    """The risk of each currency, in currency order (one currency's spends summed first)."""
    summed: dict[str, Spend] = {}
    for each in spend:
        held = summed.get(each.currency, Spend(each.currency))
        summed[each.currency] = Spend(
            each.currency, held.detractors + each.detractors, held.passives + each.passives
        )
    return [risk_of(summed[currency], probability) for currency in sorted(summed)]


def grouped(rows: Iterable[tuple[str, Spend]], probability: ChurnProbability) -> dict[str, list[Risk]]:
    """Per group (a touchpoint, a segment value): its risks, groups in code-point order."""
    by_group: dict[str, list[Spend]] = {}
    for group, spend in rows:
        by_group.setdefault(group, []).append(spend)
    return {group: risks(by_group[group], probability) for group in sorted(by_group)}


@dataclass(frozen=True, slots=True)
class Counted:
    """The detractors' and passives' answers a risk stands on (with or without a spend snapshot)."""

    detractors: int = 0
    passives: int = 0


def counted(rows: Iterable[tuple[str, Sequence[int]]]) -> dict[str, Counted]:
    """Per group: the detractors (0-6) and passives (7-8) of its 0-10 distributions, summed."""
    by_group: dict[str, Counted] = {}
    for group, distribution in rows:
        held = by_group.get(group, Counted())
        by_group[group] = Counted(
            held.detractors + sum(distribution[:7]), held.passives + sum(distribution[7:9])
        )
    return by_group
