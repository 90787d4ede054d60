"""Stripe, Intercom, Zammad and Help Scout: each verify() over the raw bytes of the real published
payloads (tests/fixtures/webhooks), and each map() on them and on variants made by editing one field
of them here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.events import TICKET_CLOSED, InvalidEvent, PurchaseCompleted, TicketClosed
from services.trigger import adapters
from services.trigger.adapters import Delivery, Ignored, MapResult, helpscout, intercom, stripe, zammad
from services.trigger.adapters.common import Headers, Unauthorized, parse_json
from services.trigger.domain.money import to_minor_units

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
TENANT = "3b0d3f6e-8f0a-4e55-9d8b-6a1f4c2e7d10"
NOW = datetime(2025, 1, 8, 16, 46, tzinfo=UTC)
SECRET = "test-secret-0123456789abcdef"

Verify = Callable[[str, Headers, bytes, datetime], None]


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> Any:
    return parse_json(raw(name))


def stripe_headers(body: bytes, secret: str = SECRET, at: datetime = NOW, *extra: str) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": ",".join([f"t={stamp}", *extra, f"v1={digest}"])}


def hub_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def helpscout_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()
    return {"X-HelpScout-Signature": digest, "X-HelpScout-Event": "convo.status"}


SIGNED: list[tuple[Verify, Callable[..., dict[str, str]], str]] = [
    (stripe.verify, stripe_headers, "stripe_checkout_session_completed.json"),
    (intercom.verify, hub_headers, "intercom_conversation_admin_closed.json"),
    (zammad.verify, hub_headers, "zammad_ticket_trigger_default.json"),
    (helpscout.verify, helpscout_headers, "helpscout_conversation.json"),
]


def deliver(payload: Any, headers: dict[str, str] | None = None) -> Delivery:
    body = json.dumps(payload, default=str).encode()
    return Delivery(tenant_id=TENANT, headers=headers or {}, body=body, payload=payload, now=NOW)


def one(result: MapResult) -> Any:
    assert not isinstance(result, Ignored), result
    [event] = result
    assert event.tenant_id == TENANT
    return event


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("verify", "sign", "name"), SIGNED)
def test_the_right_signature_over_the_raw_bytes_is_accepted(
    verify: Verify, sign: Callable[..., dict[str, str]], name: str
) -> None:
    body = raw(name)
    verify(SECRET, sign(body), body, NOW)
    verify(SECRET, {key.lower(): value for key, value in sign(body).items()}, body, NOW)


@pytest.mark.parametrize(("verify", "sign", "name"), SIGNED)
def test_missing_forged_and_one_byte_changed_signatures_are_refused(
    verify: Verify, sign: Callable[..., dict[str, str]], name: str
) -> None:
    body = raw(name)
    with pytest.raises(Unauthorized, match="missing"):
        verify(SECRET, {}, body, NOW)
    with pytest.raises(Unauthorized):
        verify(SECRET, sign(body, "another-secret-0123456789"), body, NOW)
    changed = body.replace(b"\n", b" ", 1)
    assert changed != body
    with pytest.raises(Unauthorized, match="match"):
        verify(SECRET, sign(body), changed, NOW)


@given(position=st.integers(min_value=0), flip=st.integers(1, 255))
@pytest.mark.parametrize(("verify", "sign", "name"), SIGNED)
def test_any_single_byte_change_of_a_real_body_is_refused(
    verify: Verify, sign: Callable[..., dict[str, str]], name: str, position: int, flip: int
) -> None:
    body = raw(name)
    headers = sign(body)
    index = position % len(body)
    changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(Unauthorized):
        verify(SECRET, headers, changed, NOW)


def test_stripe_accepts_any_v1_of_a_rotation_and_ignores_other_schemes() -> None:
    body = raw("stripe_checkout_session_completed.json")
    old_secret = hmac.new(b"the-old-secret", b"x", hashlib.sha256).hexdigest()
    # The first v1 is signed with a secret we no longer hold, the second with ours.
    rotating = stripe_headers(body, SECRET, NOW, f"v1={old_secret}", "v0=deadbeef")
    stripe.verify(SECRET, rotating, body, NOW)
    assert stripe.signature_parts(rotating["Stripe-Signature"])[1][0] == old_secret
    with pytest.raises(Unauthorized, match=r"no v1 signature .* matches"):
        stripe.verify("yet-another-secret-0123456789", rotating, body, NOW)


def test_stripe_refuses_a_timestamp_outside_five_minutes_either_way() -> None:
    body = raw("stripe_checkout_session_completed.json")
    stripe.verify(SECRET, stripe_headers(body, SECRET, NOW - timedelta(seconds=300)), body, NOW)
    for at in (NOW - timedelta(seconds=301), NOW + timedelta(seconds=301)):
        with pytest.raises(Unauthorized, match="more than 5 minutes"):
            stripe.verify(SECRET, stripe_headers(body, SECRET, at), body, NOW)


@pytest.mark.parametrize(
    "value", ["v1=abc", "t=,v1=abc", "t=soon,v1=abc", "t=1678660540", "t=1678660540,v0=abc", "garbage"]
)
def test_stripe_refuses_headers_without_a_timestamp_or_a_v1(value: str) -> None:
    body = raw("stripe_checkout_session_completed.json")
    with pytest.raises(Unauthorized, match="Stripe-Signature has no"):
        stripe.verify(SECRET, {"Stripe-Signature": value}, body, NOW)


def test_a_hub_signature_without_the_sha1_prefix_is_refused() -> None:
    body = raw("zammad_ticket_trigger_default.json")
    bare = {"X-Hub-Signature": hub_headers(body)["X-Hub-Signature"].removeprefix("sha1=")}
    with pytest.raises(Unauthorized, match="sha1=<hex digest>"):
        zammad.verify(SECRET, bare, body, NOW)
    upper = {"X-Hub-Signature": "sha1=" + hub_headers(body)["X-Hub-Signature"][5:].upper()}
    zammad.verify(SECRET, upper, body, NOW)


def test_the_registry_routes_each_new_platform_and_help_scout_secrets_fit_its_limit() -> None:
    for platform in ("stripe", "intercom", "zammad", "helpscout"):
        assert platform in adapters.PLATFORMS
    body = raw("helpscout_conversation.json")
    adapters.verify("helpscout", SECRET, helpscout_headers(body), body, NOW)
    assert {"zammad", "helpscout"} <= adapters.GENERATES_SECRET
    assert not adapters.GENERATES_SECRET & {"stripe", "intercom"}
    # token_urlsafe(n) gives ceil(4n/3) characters.
    assert -(-4 * adapters.SECRET_BYTES["helpscout"] // 3) <= helpscout.SECRET_LIMIT


# --- Stripe -------------------------------------------------------------------------------------


def stripe_event(**session_changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = fixture("stripe_checkout_session_completed.json")
    event["data"]["object"].update(session_changes)
    return event


def test_a_completed_checkout_session_is_a_paid_purchase_in_major_units() -> None:
    event = one(stripe.map(deliver(stripe_event())))
    data = event.data
    assert isinstance(data, PurchaseCompleted)
    assert event.id == "stripe:evt_1MkxUOIeF8oCm2lonff14M3I"
    assert data.order_id == "cs_test_a16punzK4ihyktWcjzOG0eIavHzIPiNjVjrFIAA0KPuTLpFreZhgc4JT8D"
    assert data.customer_id == "cus_NVzTrA9clOEYdB"
    assert (data.email, data.name, data.locale) == ("learnmatlabwithrami@gmail.com", "a", None)
    assert (data.amount, data.currency, data.status) == (Decimal("10.00"), "EUR", "paid")
    assert to_minor_units(Decimal("10.00"), "EUR") == 1000
    assert data.occurred_at == datetime.fromtimestamp(1678660540, UTC)
    assert data.attributes == {"country": "DE"}
    # The captured delivery is from test mode.
    assert data.test is True


def test_stripe_live_mode_guest_and_zero_decimal_variants() -> None:
    event = stripe_event(customer=None, currency="jpy", amount_total=1000, locale="de")
    event["livemode"] = True
    event["data"]["object"]["livemode"] = True
    event["data"]["object"]["customer_details"]["email"] = "Guest@Example.com"
    data = one(stripe.map(deliver(event))).data
    assert data.test is False
    assert data.customer_id == "guest@example.com"
    assert data.locale == "de"
    # JPY has no minor unit at Stripe nor in ISO 4217: 1000 is 1000 yen.
    assert (data.amount, data.currency) == (Decimal("1000"), "JPY")
    assert to_minor_units(data.amount, data.currency) == 1000


@pytest.mark.parametrize(
    ("currency", "amount_total", "major", "minor"),
    [("kwd", 1234, "1.234", 1234), ("isk", 50000, "500.00", 500), ("usd", 1999, "19.99", 1999)],
)
def test_stripe_minor_units_follow_stripe_then_iso(
    currency: str, amount_total: int, major: str, minor: int
) -> None:
    data = one(stripe.map(deliver(stripe_event(currency=currency, amount_total=amount_total)))).data
    assert data.amount == Decimal(major)
    # ISK: Stripe sends two decimals, ISO 4217 has none; the ledger keeps whole krónur.
    assert to_minor_units(data.amount, data.currency) == minor


def test_stripe_email_falls_back_to_customer_email() -> None:
    event = stripe_event(customer_email="buyer@example.com")
    event["data"]["object"]["customer_details"] = None
    assert one(stripe.map(deliver(event))).data.email == "buyer@example.com"


def test_an_unpaid_session_and_other_stripe_events_are_ignored() -> None:
    unpaid = stripe.map(deliver(stripe_event(payment_status="unpaid")))
    assert isinstance(unpaid, Ignored)
    assert "'unpaid'" in unpaid.reason and stripe.ASYNC_SUCCEEDED in unpaid.reason
    other = stripe_event()
    other["type"] = "payment_intent.succeeded"
    ignored = stripe.map(deliver(other))
    assert isinstance(ignored, Ignored) and "payment_intent.succeeded" in ignored.reason


def test_a_delayed_payment_that_succeeds_later_is_the_purchase() -> None:
    event = stripe_event()
    event["type"] = stripe.ASYNC_SUCCEEDED
    assert one(stripe.map(deliver(event))).data.status == "paid"


def test_a_stripe_session_naming_nobody_is_invalid() -> None:
    event = stripe_event(customer=None, customer_email=None)
    event["data"]["object"]["customer_details"]["email"] = None
    with pytest.raises(InvalidEvent, match="neither a customer nor an email"):
        stripe.map(deliver(event))


# --- Intercom -----------------------------------------------------------------------------------


def test_an_admin_closed_conversation_is_a_closed_ticket() -> None:
    event = one(intercom.map(deliver(fixture("intercom_conversation_admin_closed.json"))))
    data = event.data
    assert isinstance(data, TicketClosed) and event.type == TICKET_CLOSED
    assert event.id == "intercom:notif_2bc4bf3a-0064-4fb0-9e17-dc44d91bcb9b"
    assert data.ticket_id == "21322009097"
    assert data.customer_id == "75067020-1204-495c-8edc-abb7d88bdd43"
    assert (data.email, data.name) == ("jerryguitarist@gmail.com", "Eeshan Garg")
    assert data.agent_email == "cordelia@zulip.com"
    assert data.closed_at == datetime.fromtimestamp(1553291389, UTC)


def test_intercom_ping_and_other_topics_are_ignored() -> None:
    assert intercom.map(deliver(fixture("intercom_ping.json"))) == Ignored("ping")
    other = fixture("intercom_conversation_admin_closed.json")
    other["topic"] = "conversation.admin.replied"
    ignored = intercom.map(deliver(other))
    assert isinstance(ignored, Ignored) and "conversation.admin.replied" in ignored.reason


def test_an_intercom_conversation_without_a_contact_is_invalid() -> None:
    nobody = fixture("intercom_conversation_admin_closed.json")
    nobody["data"]["item"]["user"] = None
    with pytest.raises(InvalidEvent, match="neither a contact id nor an email"):
        intercom.map(deliver(nobody))


# --- Zammad -------------------------------------------------------------------------------------


def zammad_closed(**ticket_changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = fixture("zammad_ticket_trigger_default.json")
    payload["ticket"].update(state="closed", **ticket_changes)
    return payload


def test_a_zammad_ticket_closed_is_a_closed_ticket_deduped_on_the_delivery() -> None:
    event = one(zammad.map(deliver(zammad_closed(), {"X-Zammad-Delivery": "b6b1e5f4-2d47-4ab1-8a5f"})))
    data = event.data
    assert event.id == "zammad:b6b1e5f4-2d47-4ab1-8a5f"
    assert (data.ticket_id, data.customer_id, data.status) == ("81", "8", "closed")
    assert (data.email, data.name) == ("emily@example.com", "Emily Adams")
    assert data.agent_email == "emma@chrispresso.com"
    assert data.account_id == "3"
    assert data.closed_at == datetime(2020, 11, 13, 14, 34, 35, 333000, tzinfo=UTC)
    assert data.attributes == {"group": "Service Desk", "priority": "2 normal"}
    without_header = one(zammad.map(deliver(zammad_closed())))
    assert without_header.id == "zammad:ticket:81:closed"


def test_the_published_zammad_sample_is_open_and_ignored() -> None:
    ignored = zammad.map(deliver(fixture("zammad_ticket_trigger_default.json")))
    assert ignored == Ignored("ticket state is 'open', not closed")


def test_a_zammad_body_without_a_ticket_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="default payload"):
        zammad.map(deliver({"article": {}}))


# --- Help Scout ---------------------------------------------------------------------------------


def test_a_help_scout_status_change_to_closed_is_a_closed_ticket() -> None:
    headers = {"X-HelpScout-Event": "convo.status"}
    event = one(helpscout.map(deliver(fixture("helpscout_conversation.json"), headers)))
    data = event.data
    assert event.id == "helpscout:conversation:123:closed:2012-03-16T14:07:23Z"
    assert (data.ticket_id, data.customer_id) == ("123", "238604")
    assert (data.email, data.name) == ("rob@acme.com", "Rob Robertovic")
    assert data.agent_email == "none@nowhere.com"
    assert data.closed_at == datetime(2012, 3, 16, 14, 7, 23, tzinfo=UTC)
    assert data.attributes == {"mailbox_id": "13"}


def test_help_scout_other_statuses_and_events_are_ignored() -> None:
    active = fixture("helpscout_conversation.json")
    active["status"] = "active"
    ignored = helpscout.map(deliver(active, {"X-HelpScout-Event": "convo.status"}))
    assert ignored == Ignored("conversation status changed to 'active', not closed")
    for event in ("convo.assigned", "helpscout.test", ""):
        other = helpscout.map(deliver(fixture("helpscout_conversation.json"), {"X-HelpScout-Event": event}))
        assert isinstance(other, Ignored) and "convo.status" in other.reason
