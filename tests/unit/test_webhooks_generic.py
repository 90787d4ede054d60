"""The generic JSON mapping: validation names the problem; dotted paths find the fields."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import Contract, Event, InvalidEvent, PurchaseCompleted, TicketClosed
from services.trigger.adapters import Delivery, Ignored, generic
from services.trigger.adapters.common import NotJson, parse_json

TENANT = "3b0d3f6e-8f0a-4e55-9d8b-6a1f4c2e7d10"
NOW = datetime(2025, 1, 8, 16, 46, tzinfo=UTC)

ORDER = {
    "event": {"id": "evt_01HZX", "kind": "order.paid"},
    "order": {"number": 10001, "total": 129.50, "currency": "EUR"},
    "customer": {"id": 9007199254740993, "email": "jane@example.com", "name": "Jane Doe"},
    "items": [{"sku": "TEE-01"}, {"sku": "MUG-02"}],
}
MAPPING: dict[str, Any] = {
    "event_type": "purchase.completed.v1",
    "id": "event.id",
    "fields": {
        "order_id": "order.number",
        "customer_id": "customer.id",
        "email": "customer.email",
        "name": "customer.name",
        "amount": "order.total",
        "currency": "order.currency",
        "status": "event.kind",
    },
    "signature": {"header": "X-Signature", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256="},
}


def delivery(payload: Any) -> Delivery:
    body = json.dumps(payload).encode()
    return Delivery(tenant_id=TENANT, headers={}, body=body, payload=parse_json(body), now=NOW)


def mapped(target: Delivery, mapping: generic.GenericMapping) -> list[Event[Contract]]:
    result = generic.map(target, mapping)
    assert not isinstance(result, Ignored)
    return result


def test_a_mapped_body_becomes_its_event_with_exact_ids_and_amounts() -> None:
    [event] = mapped(delivery(ORDER), generic.parse_mapping(MAPPING))
    assert event.id == "generic:evt_01HZX"
    assert event.data == PurchaseCompleted(
        order_id="10001",
        customer_id="9007199254740993",
        email="jane@example.com",
        name="Jane Doe",
        amount=Decimal("129.5"),
        currency="EUR",
        status="order.paid",
    )


def test_without_an_id_path_the_body_hash_names_the_delivery() -> None:
    mapping = generic.parse_mapping({k: v for k, v in MAPPING.items() if k != "id"})
    first = delivery(ORDER)
    [event] = mapped(first, mapping)
    assert event.id == "generic:sha256-" + hashlib.sha256(first.body).hexdigest()
    [again] = mapped(delivery(ORDER), mapping)
    assert again.id == event.id


def test_a_ticket_mapping_with_list_positions() -> None:
    mapping = generic.parse_mapping(
        {
            "event_type": "ticket.closed.v1",
            "fields": {"ticket_id": "items.1.sku", "customer_id": "customer.email"},
        }
    )
    [event] = mapped(delivery(ORDER), mapping)
    assert event.data == TicketClosed(ticket_id="MUG-02", customer_id="jane@example.com")
    assert mapping.signature == generic.SignatureSpec()


def test_a_required_field_missing_from_the_body_is_invalid() -> None:
    body = {**ORDER, "customer": {"email": "jane@example.com"}}
    with pytest.raises(InvalidEvent, match=r"data\.customer_id"):
        mapped(delivery(body), generic.parse_mapping(MAPPING))


def test_a_configured_id_path_must_find_an_id() -> None:
    with pytest.raises(InvalidEvent, match=r"event\.id"):
        mapped(delivery({**ORDER, "event": {}}), generic.parse_mapping(MAPPING))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"event_type": "order.shipped.v1"}, "mapping.event_type"),
        ({"fields": {"order_id": "order.number"}}, "customer_id must be mapped for purchase.completed.v1"),
        ({"fields": {**MAPPING["fields"], "shoe_size": "customer.shoe"}}, "'shoe_size' is not a field"),
        ({"fields": {**MAPPING["fields"], "email": "customer..email"}}, "mapping.fields.email"),
        ({"fields": {**MAPPING["fields"], "email": ""}}, "mapping.fields.email"),
        ({"fields": {**MAPPING["fields"], "email": "customer email"}}, "not a dotted path"),
        ({"id": ".event.id"}, "mapping.id"),
        ({"signature": {"algorithm": "md5"}}, "mapping.signature.algorithm"),
        ({"signature": {"encoding": "base32"}}, "mapping.signature.encoding"),
        ({"signature": {"header": "X Sig\r\nInjected: 1"}}, "mapping.signature.header"),
        ({"extra": 1}, "mapping.extra"),
    ],
)
def test_a_wrong_mapping_is_refused_naming_the_problem(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(generic.MappingError) as refused:
        generic.parse_mapping({**MAPPING, **change})
    assert problem in refused.value.problem


def test_a_ticket_mapping_needs_the_ticket_id() -> None:
    with pytest.raises(generic.MappingError, match=r"ticket_id must be mapped for ticket\.closed\.v1"):
        generic.parse_mapping({"event_type": "ticket.closed.v1", "fields": {"customer_id": "a"}})


_KEYS = ["event", "id", "kind", "order", "number", "total", "currency", "customer", "email", "name", "0"]
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.emails()
)
_DOCUMENTS = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), children, max_size=5)
    ),
    max_leaves=25,
)


def _body(document: Any) -> bytes:
    return json.dumps(document, default=str).encode()


@given(
    body=st.one_of(
        _DOCUMENTS.map(_body),
        st.builds(lambda d: {**ORDER, **d}, st.dictionaries(st.sampled_from(_KEYS), _DOCUMENTS)).map(_body),
        st.binary(max_size=40),
    )
)
def test_every_body_is_mapped_to_valid_events_or_refused_with_a_reason(body: bytes) -> None:
    mapping = generic.parse_mapping(MAPPING)
    try:
        target = Delivery(tenant_id=TENANT, headers={}, body=body, payload=parse_json(body), now=NOW)
        result = generic.map(target, mapping)
    except NotJson as refused:
        assert refused.reason.startswith("body is not valid JSON")
        return
    except InvalidEvent as refused:
        # The reason names the part of the body or the event that is wrong.
        assert re.match(r"^(id|data(\.[a-z_]+)?|[a-z_.]+(\[\d+\])*): .+", refused.reason), refused.reason
        return
    assert not isinstance(result, Ignored)
    [event] = result
    assert event.type == "purchase.completed.v1" and event.tenant_id == TENANT
    assert isinstance(event.data, PurchaseCompleted)
    assert event.data.order_id and event.data.customer_id
    assert event.id.startswith("generic:")


def test_paths_walk_objects_and_lists_and_stop_where_the_document_does() -> None:
    assert generic.resolve(ORDER, "items.0.sku") == "TEE-01"
    assert generic.resolve(ORDER, "items.5.sku") is None
    assert generic.resolve(ORDER, "customer.email.domain") is None
    assert generic.resolve(ORDER, "order.number") == 10001
