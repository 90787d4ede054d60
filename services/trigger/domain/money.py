"""What a customer spent: amounts in their currency's minor units, and the 12-month snapshot a survey
request carries. Pure: the handler passes the amounts it loaded and the time of the request.

- An amount is kept in the minor units of its own currency (cents, øre, fils): never converted to
  another currency, so a customer who pays in DKK and EUR has two totals.
- How many minor units a currency has is ISO 4217's, as babel's CLDR data says
  (:func:`babel.numbers.get_currency_precision`): JPY 0, DKK 2, KWD 3. A code babel does not know
  gets its default, 2.
- An amount finer than its currency allows (``12.345`` DKK, ``100.5`` JPY) is rounded half-even
  (banker's rounding) to the nearest minor unit: 1234 øre, 100 yen; ``101.5`` JPY is 102 yen.
- The snapshot holds at most :data:`MAX_CURRENCIES` currencies, the largest first (compared in each
  currency's own major units, since there is no exchange rate to compare them by; the code breaks
  ties), each total capped at :data:`MAX_AMOUNT_MINOR`; ``None`` when nothing is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from babel.numbers import get_currency_precision

from libs.common.events import MAX_CURRENCIES, Money

#: The 12 months a snapshot covers, up to the survey request.
SPEND_WINDOW = timedelta(days=365)
#: The largest total a snapshot carries (the contract's bound); a larger one is capped to it.
MAX_AMOUNT_MINOR = 10**15


@lru_cache(maxsize=512)
def minor_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has: JPY 0, DKK 2, KWD 3."""
    return int(get_currency_precision(currency))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` (major units, e.g. ``12.50`` DKK) in the currency's minor units (1250 øre), rounded
    half-even when it is finer than the currency allows."""
    exponent = minor_exponent(currency)
    return int(amount.scaleb(exponent).to_integral_value(rounding=ROUND_HALF_EVEN))


def spend_since(now: datetime) -> datetime:
    """The first moment a snapshot taken at ``now`` counts purchases from (inclusive)."""
    return now - SPEND_WINDOW


def spend_snapshot(totals: Iterable[tuple[str, int]]) -> list[Money] | None:
    """One customer's totals per currency as a survey carries them: the largest first, at most
    :data:`MAX_CURRENCIES`, each capped; ``None`` when there is none. A currency listed twice is
    summed."""
    summed: dict[str, int] = {}
    for currency, amount_minor in totals:
        summed[currency] = summed.get(currency, 0) + amount_minor
    if not summed:
        return None
    ranked = sorted(summed.items(), key=lambda item: (-_in_major_units(*item), item[0]))
    return [
        Money(amount_minor=min(max(amount, 0), MAX_AMOUNT_MINOR), currency=currency)
        for currency, amount in ranked[:MAX_CURRENCIES]
    ]


def _in_major_units(currency: str, amount_minor: int) -> Decimal:
    return Decimal(amount_minor).scaleb(-minor_exponent(currency))
