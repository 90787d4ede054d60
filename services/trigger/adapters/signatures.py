"""HMAC helpers the platform adapters share. Every comparison is constant-time."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

#: How far a signed timestamp may be from our clock, either way, before the delivery is refused as
#: a replay (or as coming from a badly wrong clock).
TOLERANCE = timedelta(minutes=5)


def hmac_sha256(secret: str, *parts: bytes) -> bytes:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def base64_hmac(secret: str, *parts: bytes) -> str:
    return base64.b64encode(hmac_sha256(secret, *parts)).decode()


def hex_hmac(secret: str, *parts: bytes) -> str:
    return hmac_sha256(secret, *parts).hex()


def hex_hmac_sha1(secret: str, body: bytes) -> str:
    """GitHub-style ``X-Hub-Signature`` digests (Intercom, Zammad): SHA-1 is what they send; as an
    HMAC it still proves the key, which is all we ask of it."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def base64_hmac_sha1(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def same(presented: str, expected: str) -> bool:
    """Whether a presented signature equals the expected one, without a timing side channel."""
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def same_secret(presented: str, secret: str) -> bool:
    """For plain shared tokens: comparing digests keeps even the secret's length from leaking."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(), hashlib.sha256(secret.encode()).digest()
    )


def parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 time or Unix seconds, as platforms put them in signature headers."""
    value = value.strip()
    if value.isdigit():
        try:
            return datetime.fromtimestamp(int(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def is_fresh(signed_at: datetime, now: datetime, tolerance: timedelta = TOLERANCE) -> bool:
    return abs(now - signed_at) <= tolerance


def check_hub_signature(secret: str, presented: str | None, body: bytes, name: str) -> str | None:
    """Why an ``X-Hub-Signature: sha1=<hex HMAC-SHA1(secret, body)>`` does not prove the body, or
    None when it does. ``name`` is the header's name, for the reason."""
    if not presented:
        return f"missing {name} header"
    scheme, _, digest = presented.strip().partition("=")
    if scheme.lower() != "sha1" or not digest:
        return f"{name} is not of the form sha1=<hex digest>"
    if not same(digest.lower(), hex_hmac_sha1(secret, body)):
        return f"{name} does not match the body"
    return None
