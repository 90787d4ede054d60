"""Each platform's signature check over the exact raw bytes: the right signature passes; a missing
header, a forged signature, a body changed by one byte and a stale Zendesk timestamp do not."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.trigger.adapters import Unauthorized, freshdesk, generic, shopify, woocommerce, zendesk

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
SECRET = "s3cr3t-for-tests-0123456789"
NOW = datetime(2025, 1, 8, 16, 45, 30, tzinfo=UTC)
Verify = Callable[[str, dict[str, str], bytes, datetime], None]


def b64(secret: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def shopify_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Shopify-Hmac-Sha256": b64(secret, body)}


def woocommerce_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-WC-Webhook-Signature": b64(secret, body)}


def zendesk_headers(body: bytes, secret: str = SECRET, at: datetime = NOW) -> dict[str, str]:
    return {
        "X-Zendesk-Webhook-Signature": b64(secret, stamp(at).encode() + body),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp(at),
    }


def freshdesk_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-NPS-Webhook-Token": secret}


SPEC = generic.SignatureSpec(header="X-Signature", encoding="hex", prefix="sha256=")


def generic_verify(secret: str, headers: dict[str, str], body: bytes, now: datetime) -> None:
    generic.verify(secret, headers, body, now, SPEC)


def generic_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


SIGNED: list[tuple[str, Verify, Callable[[bytes], dict[str, str]], str]] = [
    ("shopify", shopify.verify, shopify_headers, "shopify_orders_paid.json"),
    ("woocommerce", woocommerce.verify, woocommerce_headers, "woocommerce_order_created.json"),
    ("zendesk", zendesk.verify, zendesk_headers, "zendesk_ticket_status_changed.json"),
    ("generic", generic_verify, generic_headers, "woocommerce_order_created.json"),
]
ALL = [*SIGNED, ("freshdesk", freshdesk.verify, freshdesk_headers, "freshdesk_ticket_status_changed.json")]


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(("platform", "verify", "sign", "fixture"), ALL)
def test_the_right_signature_over_the_raw_bytes_is_accepted(
    platform: str, verify: Verify, sign: Callable[[bytes], dict[str, str]], fixture: str
) -> None:
    body = raw(fixture)
    verify(SECRET, sign(body), body, NOW)
    # Header names are case-insensitive on the wire.
    verify(SECRET, {name.lower(): value for name, value in sign(body).items()}, body, NOW)


@pytest.mark.parametrize(("platform", "verify", "sign", "fixture"), ALL)
def test_a_missing_header_is_refused(
    platform: str, verify: Verify, sign: Callable[[bytes], dict[str, str]], fixture: str
) -> None:
    body = raw(fixture)
    with pytest.raises(Unauthorized, match="missing"):
        verify(SECRET, {}, body, NOW)


@pytest.mark.parametrize(("platform", "verify", "sign", "fixture"), ALL)
def test_a_signature_made_with_another_secret_is_refused(
    platform: str, verify: Verify, sign: Callable[[bytes], dict[str, str]], fixture: str
) -> None:
    body = raw(fixture)
    forged = _signed_with(platform, body, "another-secret-0123456789")
    with pytest.raises(Unauthorized):
        verify(SECRET, forged, body, NOW)


def _signed_with(platform: str, body: bytes, secret: str) -> dict[str, str]:
    signers: dict[str, Callable[..., dict[str, str]]] = {
        "shopify": shopify_headers,
        "woocommerce": woocommerce_headers,
        "zendesk": zendesk_headers,
        "generic": generic_headers,
        "freshdesk": freshdesk_headers,
    }
    return signers[platform](body, secret)


@pytest.mark.parametrize(("platform", "verify", "sign", "fixture"), SIGNED)
def test_a_body_changed_by_one_byte_is_refused(
    platform: str, verify: Verify, sign: Callable[[bytes], dict[str, str]], fixture: str
) -> None:
    body = raw(fixture)
    headers = sign(body)
    # The same JSON value, one byte different: re-serialising before checking would miss it.
    changed = body.replace(b"\n", b" ", 1)
    assert changed != body
    with pytest.raises(Unauthorized, match="does not match"):
        verify(SECRET, headers, changed, NOW)


@given(body=st.binary(min_size=1, max_size=300), position=st.integers(min_value=0), flip=st.integers(1, 255))
@pytest.mark.parametrize(("platform", "verify", "sign", "fixture"), SIGNED)
def test_any_single_byte_change_is_refused(
    platform: str,
    verify: Verify,
    sign: Callable[[bytes], dict[str, str]],
    fixture: str,
    body: bytes,
    position: int,
    flip: int,
) -> None:
    headers = sign(body)
    verify(SECRET, headers, body, NOW)
    index = position % len(body)
    changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(Unauthorized):
        verify(SECRET, headers, changed, NOW)


@pytest.mark.parametrize(
    "signed_at",
    [NOW - timedelta(minutes=5, seconds=1), NOW + timedelta(minutes=5, seconds=1), NOW - timedelta(days=1)],
)
def test_a_stale_or_future_zendesk_timestamp_is_refused_even_when_correctly_signed(
    signed_at: datetime,
) -> None:
    body = raw("zendesk_ticket_status_changed.json")
    with pytest.raises(Unauthorized, match="5 minutes"):
        zendesk.verify(SECRET, zendesk_headers(body, at=signed_at), body, NOW)


def test_a_zendesk_timestamp_inside_the_tolerance_is_accepted() -> None:
    body = raw("zendesk_ticket_status_changed.json")
    for signed_at in (NOW - timedelta(minutes=4, seconds=59), NOW + timedelta(minutes=4)):
        zendesk.verify(SECRET, zendesk_headers(body, at=signed_at), body, NOW)


def test_the_zendesk_timestamp_is_part_of_what_is_signed() -> None:
    body = raw("zendesk_ticket_status_changed.json")
    headers = zendesk_headers(body)
    headers["X-Zendesk-Webhook-Signature-Timestamp"] = stamp(NOW - timedelta(seconds=10))
    with pytest.raises(Unauthorized, match="does not match"):
        zendesk.verify(SECRET, headers, body, NOW)


def test_a_zendesk_timestamp_that_is_not_a_time_is_refused() -> None:
    body = b"{}"
    headers = {
        "X-Zendesk-Webhook-Signature": b64(SECRET, b"soon" + body),
        "X-Zendesk-Webhook-Signature-Timestamp": "soon",
    }
    with pytest.raises(Unauthorized, match="not a time"):
        zendesk.verify(SECRET, headers, body, NOW)


def test_freshdesk_takes_the_token_as_a_bearer_too_and_refuses_a_wrong_one() -> None:
    freshdesk.verify(SECRET, {"Authorization": f"Bearer {SECRET}"}, b"{}", NOW)
    with pytest.raises(Unauthorized):
        freshdesk.verify(SECRET, {"Authorization": "Bearer wrong-token"}, b"{}", NOW)
    with pytest.raises(Unauthorized):
        freshdesk.verify(SECRET, {"X-NPS-Webhook-Token": SECRET[:-1]}, b"{}", NOW)


@pytest.mark.parametrize(
    ("spec", "signature"),
    [
        (
            generic.SignatureSpec(header="X-Hub-Signature-256", encoding="hex", prefix="sha256="),
            "sha256={hex}",
        ),
        (
            generic.SignatureSpec(header="X-Hub-Signature-256", encoding="hex", prefix="sha256="),
            "sha256={HEX}",
        ),
        (generic.SignatureSpec(header="X-Sig", encoding="base64"), "{b64}"),
        (generic.SignatureSpec(header="X-Sig", encoding="hex"), "{hex}"),
    ],
)
def test_generic_signatures_follow_the_endpoints_spec(spec: generic.SignatureSpec, signature: str) -> None:
    body = b'{"order": 1}'
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256)
    value = signature.format(hex=digest.hexdigest(), HEX=digest.hexdigest().upper(), b64=b64(SECRET, body))
    generic.verify(SECRET, {spec.header: value}, body, NOW, spec)
    with pytest.raises(Unauthorized):
        generic.verify(SECRET, {spec.header: value}, body + b" ", NOW, spec)


def test_generic_refuses_a_signature_without_the_expected_prefix() -> None:
    body = b'{"order": 1}'
    bare = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(Unauthorized):
        generic.verify(SECRET, {"X-Signature": bare}, body, NOW, SPEC)


def test_the_woocommerce_ping_is_recognised_only_unsigned_and_exactly() -> None:
    assert woocommerce.is_ping({}, b"webhook_id=42")
    assert woocommerce.is_ping({"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=7")
    assert not woocommerce.is_ping({"X-WC-Webhook-Signature": "x"}, b"webhook_id=42")
    assert not woocommerce.is_ping({}, b"webhook_id=42&status=processing")
    assert not woocommerce.is_ping({}, b"webhook_id=abc")
    assert not woocommerce.is_ping({}, raw("woocommerce_order_created.json"))
