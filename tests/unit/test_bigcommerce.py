"""BigCommerce's pure parts on its published payloads (bigcommerce/docs): the signature (Standard
Webhooks, or the hook's custom header), what a delivery asks for, the mapping of a fetched order
and customer, and when a failed fetch is tried again."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from libs.common.events import InvalidEvent, OrderCancelled, PurchaseCompleted
from services.trigger.adapters import Delivery, Ignored, Unauthorized, bigcommerce
from services.trigger.domain import fetching
from services.trigger.domain.fetching import GiveUp, Retry, after_failure, retry_after_seconds

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
SECRET = "bc-client-secret-0123456789abcdef"
TENANT = "6f1c3a4e-6a0e-4a8b-9a53-1f3f0d8b2c11"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signed(body: bytes, *, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    key = secret if secret.startswith("whsec_") else base64.b64encode(secret.encode()).decode()
    return {
        "webhook-id": "msg_2a",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(key).sign("msg_2a", at, body.decode()),
    }


# --- verify ---------------------------------------------------------------------------------------


def test_a_standard_webhooks_signature_with_the_client_secret_passes() -> None:
    body = raw("bigcommerce_store_order_created.json")
    bigcommerce.verify(SECRET, signed(body), body, datetime.now(UTC))


def test_a_whsec_secret_is_used_as_standard_webhooks_writes_it() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = raw("bigcommerce_store_order_created.json")
    bigcommerce.verify(secret, signed(body, secret=secret), body, datetime.now(UTC))


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, "webhook-id": "msg_other"}, b), "does not match"),
        (lambda h, b: ({**h, "webhook-signature": "v1,bm90LWl0"}, b), "does not match"),
        (lambda h, b: ({**h, "webhook-signature": "garbage"}, b), "does not match"),
        (lambda h, b: ({**h, "webhook-signature": "v1,***"}, b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b), "webhook-timestamp"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "5 minutes"),
        (
            lambda h, b: ({**h, "X-NPS-Webhook-Token": SECRET, "webhook-signature": "v1,bm90LWl0"}, b),
            "does not match",
        ),
    ],
)
def test_a_forged_or_malformed_signature_is_refused(change: Any, detail: str) -> None:
    body = raw("bigcommerce_store_order_created.json")
    headers, sent = change(signed(body), body)
    with pytest.raises(Unauthorized, match=detail):
        bigcommerce.verify(SECRET, headers, sent, datetime.now(UTC))


def test_a_body_that_is_not_utf8_is_refused_not_crashed_on() -> None:
    body = b"\xff\xfe{}"
    headers = signed(b"{}")
    with pytest.raises(Unauthorized):
        bigcommerce.verify(SECRET, headers, body, datetime.now(UTC))


def test_a_stale_or_future_timestamp_is_refused_by_our_clock() -> None:
    body = raw("bigcommerce_store_order_created.json")
    headers = signed(body)
    now = datetime.now(UTC)
    for offset in (timedelta(minutes=6), -timedelta(minutes=6)):
        with pytest.raises(Unauthorized, match="5 minutes"):
            bigcommerce.verify(SECRET, headers, body, now + offset)


def test_the_custom_header_token_is_compared_and_required_without_a_signature() -> None:
    body = raw("bigcommerce_store_order_created.json")
    now = datetime.now(UTC)
    bigcommerce.verify(SECRET, {"x-nps-webhook-token": SECRET}, body, now)
    with pytest.raises(Unauthorized, match="does not match"):
        bigcommerce.verify(SECRET, {"X-NPS-Webhook-Token": SECRET[:-1]}, body, now)
    with pytest.raises(Unauthorized, match="missing"):
        bigcommerce.verify(SECRET, {}, body, now)


# --- notice ---------------------------------------------------------------------------------------


def delivery(payload: Any, headers: dict[str, str] | None = None) -> Delivery:
    return Delivery(tenant_id=TENANT, headers=headers or {}, body=b"", payload=payload, now=datetime.now(UTC))


def test_an_order_created_delivery_names_the_order_and_its_hash_names_the_delivery() -> None:
    payload = fixture("bigcommerce_store_order_created.json")
    assert bigcommerce.notice(delivery(payload)) == bigcommerce.OrderNotice(
        delivery_id="dd70c0976e06b67aaf671e73f49dcb79230ebf9d",
        scope="store/order/created",
        order_id="250",
        new_status_id=None,
    )
    signed_notice = bigcommerce.notice(delivery(payload, {"webhook-id": "msg_2a"}))
    assert isinstance(signed_notice, bigcommerce.OrderNotice)
    assert signed_notice.delivery_id == "msg_2a"


def test_a_status_change_is_fetched_only_towards_a_purchase_or_a_cancellation() -> None:
    payload = fixture("bigcommerce_store_order_statusUpdated.json")
    fetched = bigcommerce.notice(delivery(payload))
    assert isinstance(fetched, bigcommerce.OrderNotice)
    assert (fetched.order_id, fetched.new_status_id) == ("250", 11)
    for status, fetch in [(0, False), (1, False), (7, False), (14, False), (10, True), (5, True), (4, True)]:
        payload["data"]["status"]["new_status_id"] = status
        assert isinstance(bigcommerce.notice(delivery(payload)), bigcommerce.OrderNotice) is fetch, status


def test_other_scopes_are_ignored_and_broken_payloads_are_invalid() -> None:
    payload = fixture("bigcommerce_store_order_created.json")
    assert isinstance(bigcommerce.notice(delivery({**payload, "scope": "store/order/updated"})), Ignored)
    with pytest.raises(InvalidEvent, match=r"data\.id"):
        bigcommerce.notice(delivery({**payload, "data": {"type": "order", "id": "25a"}}))
    with pytest.raises(InvalidEvent, match="hash"):
        bigcommerce.notice(delivery({k: v for k, v in payload.items() if k != "hash"}))
    status_payload = fixture("bigcommerce_store_order_statusUpdated.json")
    del status_payload["data"]["status"]
    with pytest.raises(InvalidEvent, match="new_status_id"):
        bigcommerce.notice(delivery(status_payload))
    with pytest.raises(InvalidEvent):
        bigcommerce.notice(delivery([payload]))


# --- map_order ------------------------------------------------------------------------------------


def mapped(order: Any, customers: Any) -> Any:
    return bigcommerce.map_order(
        tenant_id=TENANT, delivery_id="msg_2a", order=order, customers=customers, now=datetime.now(UTC)
    )


def test_the_published_awaiting_fulfillment_order_and_its_customer_are_a_purchase() -> None:
    [event] = mapped(fixture("bigcommerce_order_100.json"), fixture("bigcommerce_customers.json"))
    assert event.id == "bigcommerce:msg_2a"
    assert event.type == "purchase.completed.v1"
    purchase = event.data
    assert isinstance(purchase, PurchaseCompleted)
    assert (purchase.order_id, purchase.customer_id) == ("100", "20")
    # The customer's account email and name, not the order's billing ones (janedoe@example.com).
    assert (purchase.email, purchase.name, purchase.locale) == ("jane.smith@example.com", "Jane Smith", "en")
    assert (purchase.amount, purchase.currency) == (Decimal("361.9500"), "USD")
    assert purchase.occurred_at == datetime(2018, 1, 10, 21, 5, 30, tzinfo=UTC)
    assert purchase.status == "awaiting_fulfillment"
    assert purchase.attributes == {"country": "US"}


def test_without_a_customer_record_the_billing_address_names_the_buyer() -> None:
    [event] = mapped(fixture("bigcommerce_order_100.json"), {"data": [], "meta": {}})
    assert (event.data.email, event.data.name) == ("janedoe@example.com", "Jane Doe")


def test_a_guest_order_is_known_by_its_billing_email() -> None:
    order = {**fixture("bigcommerce_order_100.json"), "customer_id": 0}
    order["billing_address"] = {**order["billing_address"], "email": "JaneDoe@Example.com"}
    [event] = mapped(order, None)
    assert (event.data.customer_id, event.data.email) == ("janedoe@example.com", "JaneDoe@Example.com")
    del order["billing_address"]["email"]
    with pytest.raises(InvalidEvent, match="customer_id"):
        mapped(order, None)


def test_the_published_awaiting_payment_order_is_not_a_purchase() -> None:
    result = mapped(fixture("bigcommerce_order_218.json"), fixture("bigcommerce_customers.json"))
    assert isinstance(result, Ignored)
    assert "Awaiting Payment" in result.reason


@pytest.mark.parametrize(("status_id", "reason"), [(5, "cancelled"), (4, "refunded"), (6, "voided")])
def test_cancelled_refunded_and_declined_orders_cancel(status_id: int, reason: str) -> None:
    [event] = mapped({**fixture("bigcommerce_order_100.json"), "status_id": status_id}, None)
    assert event.type == "order.cancelled.v1"
    assert isinstance(event.data, OrderCancelled)
    assert (event.data.order_id, event.data.customer_id, event.data.reason) == ("100", "20", reason)


@pytest.mark.parametrize("status_id", [0, 1, 7, 12, 13, 14])
def test_statuses_that_are_not_paid_never_purchase(status_id: int) -> None:
    assert isinstance(
        mapped({**fixture("bigcommerce_order_100.json"), "status_id": status_id}, None), Ignored
    )


@pytest.mark.parametrize("status_id", [2, 3, 8, 9, 10, 11])
def test_paid_shipped_and_completed_statuses_purchase(status_id: int) -> None:
    [event] = mapped({**fixture("bigcommerce_order_100.json"), "status_id": status_id}, None)
    assert event.data.status == bigcommerce.PURCHASED[status_id]


def test_an_order_without_a_status_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="status_id"):
        mapped({**fixture("bigcommerce_order_100.json"), "status_id": "11"}, None)
    with pytest.raises(InvalidEvent):
        mapped([], None)


# --- when to fetch again --------------------------------------------------------------------------

NOW = datetime(2026, 1, 8, 16, 45, 30, tzinfo=UTC)


def test_a_refusal_gives_up_at_once_with_its_reason() -> None:
    assert after_failure(1, NOW, retryable=False, reason="answered 404") == GiveUp("answered 404")


def test_transient_failures_wait_twice_as_long_each_time_then_give_up() -> None:
    waits = []
    for attempt in range(1, fetching.MAX_ATTEMPTS):
        step = after_failure(attempt, NOW, retryable=True, reason="answered 500")
        assert isinstance(step, Retry)
        waits.append((step.at - NOW).total_seconds())
    assert waits[:4] == [2, 4, 8, 16]
    last = after_failure(fetching.MAX_ATTEMPTS, NOW, retryable=True, reason="answered 500")
    assert last == GiveUp(f"gave up after {fetching.MAX_ATTEMPTS} attempts: answered 500")


def test_retry_after_is_respected_when_longer_and_bounded() -> None:
    assert after_failure(1, NOW, retryable=True, reason="429", retry_after=30) == Retry(
        NOW + timedelta(seconds=30)
    )
    assert after_failure(3, NOW, retryable=True, reason="429", retry_after=1) == Retry(
        NOW + timedelta(seconds=8)
    )
    assert after_failure(1, NOW, retryable=True, reason="429", retry_after=10**9) == Retry(
        NOW + timedelta(hours=1)
    )


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("120", NOW) == 120
    assert retry_after_seconds("Thu, 08 Jan 2026 16:46:30 GMT", NOW) == 60
    assert retry_after_seconds("Thu, 08 Jan 2026 16:00:00 GMT", NOW) == 0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None


@given(st.integers(min_value=1, max_value=fetching.MAX_ATTEMPTS - 1), st.none() | st.floats(0, 10**7))
def test_every_retry_is_later_than_now_and_within_the_bounds(
    attempts: int, retry_after: float | None
) -> None:
    step = after_failure(attempts, NOW, retryable=True, reason="timeout", retry_after=retry_after)
    assert isinstance(step, Retry)
    assert NOW + fetching.FIRST_WAIT <= step.at <= NOW + max(fetching.MAX_WAIT, fetching.MAX_RETRY_AFTER)
