"""The routing attributes each platform's map() fills from its real published payloads
(tests/fixtures/webhooks), and from variants made by editing one field of them here."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.events import PurchaseCompleted, TicketClosed
from services.trigger.adapters import freshdesk, shopify, woocommerce, zendesk
from services.trigger.adapters.common import attributes
from tests.unit.test_webhooks_mapping import deliver, fixture, one, shopify_order


def _purchase_attributes(event_data: object) -> dict[str, str] | None:
    assert isinstance(event_data, PurchaseCompleted)
    return event_data.attributes


def _ticket_attributes(event_data: object) -> dict[str, str] | None:
    assert isinstance(event_data, TicketClosed)
    return event_data.attributes


def _shopify(order: dict[str, Any]) -> dict[str, str] | None:
    headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Webhook-Id": "a1"}
    return _purchase_attributes(one(shopify.map(deliver(order, headers))).data)


def test_a_shopify_order_is_routed_by_its_shipping_country() -> None:
    order = shopify_order()
    order["shipping_address"]["country_code"] = "DK"
    assert order["billing_address"]["country_code"] == "US"
    assert _shopify(order) == {"country": "DK"}


def test_a_shopify_order_without_a_shipping_address_takes_the_billing_country() -> None:
    assert _shopify(shopify_order(shipping_address=None)) == {"country": "US"}


def test_a_shopify_order_with_no_address_has_no_attributes() -> None:
    assert _shopify(shopify_order(shipping_address=None, billing_address=None)) is None


def _woo(order: dict[str, Any]) -> dict[str, str] | None:
    headers = {"X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Delivery-ID": "d1"}
    return _purchase_attributes(one(woocommerce.map(deliver(order, headers))).data)


def test_a_woocommerce_order_is_routed_by_shipping_else_billing_country() -> None:
    order = fixture("woocommerce_order_created.json")
    order["shipping"]["country"] = "SE"
    assert _woo(order) == {"country": "SE"}
    # A virtual order: WooCommerce sends the shipping address with empty strings.
    order["shipping"]["country"] = ""
    order["billing"]["country"] = "NO"
    assert _woo(order) == {"country": "NO"}


def test_the_zendesk_event_names_priority_lower_cased_and_the_group_by_id() -> None:
    payload = fixture("zendesk_ticket_status_changed.json")
    payload["detail"]["priority"] = "URGENT"
    del payload["detail"]["group_id"]
    assert _ticket_attributes(one(zendesk.map(deliver(payload))).data) == {"priority": "urgent"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"priority": "High", "group": "Billing"}, {"priority": "high", "group": "Billing"}),
        # "-" is how {{ticket.priority}} renders a ticket without one; an unset group renders empty.
        ({"priority": "-", "group": ""}, None),
        ({}, None),
    ],
)
def test_the_zendesk_trigger_template_passes_priority_and_group(
    fields: dict[str, str], expected: dict[str, str] | None
) -> None:
    body = {"ticket_id": "35436", "status": "Solved", "requester_id": "20978392", **fields}
    assert _ticket_attributes(one(zendesk.map(deliver(body))).data) == expected


def test_a_freshdesk_ticket_passes_its_priority_and_group() -> None:
    payload = fixture("freshdesk_ticket_status_changed.json")
    fields = payload["freshdesk_webhook"]
    assert fields["ticket_priority"] == "Low"
    fields["triggered_event"] = "{status:{from:2,to:4}}"
    fields["ticket_group"] = "Second line"
    data = one(freshdesk.map(deliver(payload))).data
    assert _ticket_attributes(data) == {"priority": "low", "group": "Second line"}


def test_platform_values_that_do_not_fit_an_attribute_are_left_out_not_refused() -> None:
    assert attributes(country="DK", group="x" * 201, store="a\x07b", priority=7, empty="  ") == {
        "country": "DK"
    }
