"""What customers spent, in the trigger: amounts in their currency's minor units (ISO 4217, from
babel), rounded half-even, and the 12-month snapshot a survey request carries; then the same through
the real intake handler on an in-memory trigger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import (
    FOLLOWUP_RECOVERY_DUE,
    MAX_CURRENCIES,
    PURCHASE_COMPLETED,
    FollowupRecoveryDue,
    Money,
    PurchaseCompleted,
)
from services.trigger.domain.money import (
    MAX_AMOUNT_MINOR,
    SPEND_WINDOW,
    minor_exponent,
    spend_snapshot,
    to_minor_units,
)
from services.trigger.handlers.recovery import on_recovery_due
from tests.support.trigger_fakes import FakeTrigger

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
CURRENCIES = ("JPY", "DKK", "EUR", "USD", "KWD", "BHD", "ISK", "CHF", "GBP", "SEK", "NOK", "CLF")
amounts = st.decimals(min_value=0, max_value=Decimal("99999999999999.9999"), places=4)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1234", "JPY", 1234),
        ("49.90", "DKK", 4990),
        ("1.234", "KWD", 1234),
        ("0", "EUR", 0),
        # Finer than the currency allows: half-even, to the nearest minor unit.
        ("100.5", "JPY", 100),
        ("101.5", "JPY", 102),
        ("12.345", "DKK", 1234),
        ("12.355", "DKK", 1236),
        ("12.3451", "DKK", 1235),
        ("1.2345", "KWD", 1234),
    ],
)
def test_amounts_are_kept_in_the_minor_units_of_their_currency(
    amount: str, currency: str, minor: int
) -> None:
    assert to_minor_units(Decimal(amount), currency) == minor


def test_the_minor_unit_is_iso_4217s() -> None:
    assert (minor_exponent("JPY"), minor_exponent("DKK"), minor_exponent("KWD")) == (0, 2, 3)


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_an_amount_is_at_most_half_a_minor_unit_from_what_was_sent(amount: Decimal, currency: str) -> None:
    minor = to_minor_units(amount, currency)
    assert abs(Decimal(minor) - amount.scaleb(minor_exponent(currency))) <= Decimal("0.5")


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_an_amount_the_currency_can_hold_is_kept_exactly(amount: Decimal, currency: str) -> None:
    exact = amount.quantize(Decimal(1).scaleb(-minor_exponent(currency)), rounding=ROUND_DOWN)
    assert Decimal(to_minor_units(exact, currency)).scaleb(-minor_exponent(currency)) == exact


@given(first=amounts, second=amounts, currency=st.sampled_from(CURRENCIES))
def test_a_larger_amount_is_never_fewer_minor_units(first: Decimal, second: Decimal, currency: str) -> None:
    low, high = sorted((first, second))
    assert to_minor_units(low, currency) <= to_minor_units(high, currency)


totals = st.lists(
    st.tuples(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**17)), max_size=30
)


@given(totals=totals)
def test_a_snapshot_keeps_the_largest_currencies_each_summed_and_capped(
    totals: list[tuple[str, int]],
) -> None:
    snapshot = spend_snapshot(totals)
    summed: dict[str, int] = {}
    for currency, amount in totals:
        summed[currency] = summed.get(currency, 0) + amount
    if not totals:
        assert snapshot is None
        return
    assert snapshot is not None
    assert len(snapshot) == min(len(summed), MAX_CURRENCIES)
    assert len({money.currency for money in snapshot}) == len(snapshot)
    for money in snapshot:
        assert money.amount_minor == min(summed[money.currency], MAX_AMOUNT_MINOR)
    majors = [Decimal(summed[m.currency]).scaleb(-minor_exponent(m.currency)) for m in snapshot]
    assert majors == sorted(majors, reverse=True)
    left_out = set(summed) - {money.currency for money in snapshot}
    assert all(Decimal(summed[c]).scaleb(-minor_exponent(c)) <= majors[-1] for c in left_out)


def test_currencies_are_ranked_in_their_own_major_units_never_converted() -> None:
    # 5,000 yen is more yen than 20.00 DKK is kroner: never an exchange rate.
    assert spend_snapshot([("DKK", 2000), ("JPY", 5000), ("DKK", 500)]) == [
        Money(amount_minor=5000, currency="JPY"),
        Money(amount_minor=2500, currency="DKK"),
    ]


# --- Through intake -----------------------------------------------------------------------------


def bought(customer: str, order: str, **fields: object) -> PurchaseCompleted:
    return PurchaseCompleted.model_validate({"order_id": order, "customer_id": customer, **fields})


async def test_a_survey_carries_what_the_customer_spent_in_12_months_per_currency() -> None:
    trigger = FakeTrigger.new_tenant()
    earlier = [
        bought("ann", "o-1", amount="100.00", currency="DKK"),
        bought("ann", "o-2", amount="50.25", currency="DKK"),
        bought("ann", "o-3", amount="20", currency="EUR"),
        # Counted once: the same order again, as a retried webhook sends it.
        bought("ann", "o-3", amount="20", currency="EUR"),
        bought("ann", "o-old", amount="999", currency="DKK", occurred_at=NOW - SPEND_WINDOW * 2),
        # Not spend: a test order, and a purchase that says no amount.
        bought("ann", "o-test", amount="500", currency="DKK", test=True),
        bought("ann", "o-none", currency="DKK"),
    ]
    await trigger.intake([trigger.event(PURCHASE_COMPLETED, p, at=NOW) for p in earlier], NOW)
    assert trigger.requested() == []  # no address yet: nobody was asked
    later = NOW + timedelta(days=1)
    surveyed = bought("ann", "o-4", amount="1.5", currency="KWD", email="ann@example.com")
    await trigger.intake([trigger.event(PURCHASE_COMPLETED, surveyed, at=later)], later)
    [request] = trigger.requested()
    assert request.context is not None
    assert request.context.spend_12m == [
        Money(amount_minor=15025, currency="DKK"),
        Money(amount_minor=2000, currency="EUR"),
        Money(amount_minor=1500, currency="KWD"),
    ]


async def test_a_customer_with_no_known_purchase_amount_carries_no_spend() -> None:
    trigger = FakeTrigger.new_tenant()
    await trigger.intake([trigger.purchase("bob", "o-1", at=NOW)], NOW)
    [request] = trigger.requested()
    assert request.context is not None and request.context.spend_12m is None


async def test_a_recovery_survey_carries_the_same_snapshot() -> None:
    trigger = FakeTrigger.new_tenant()
    order = bought("cid", "o-1", amount="75", currency="DKK")
    await trigger.intake([trigger.event(PURCHASE_COMPLETED, order, at=NOW)], NOW)
    due = FollowupRecoveryDue(
        case_id=uuid.uuid4(),
        response_id=uuid.uuid4(),
        customer_id="cid",
        email="cid@example.com",
        touchpoint="webshop-purchase",
        score=3,
        resolved_at=NOW,
        due_at=NOW,
    )
    async with trigger.uow as uow:
        await on_recovery_due([trigger.event(FOLLOWUP_RECOVERY_DUE, due, at=NOW)], uow, now=NOW)
        await uow.commit()
    [request] = trigger.requested()
    assert request.context is not None and request.context.purpose == "recovery"
    assert request.context.spend_12m == [Money(amount_minor=7500, currency="DKK")]
