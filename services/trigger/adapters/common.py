"""What every platform adapter shares: the delivery it reads, what it answers, and the small
conversions from a platform's JSON to our contracts' fields. Pure: no I/O, ``now`` passed in."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

from pydantic import TypeAdapter, ValidationError

from libs.common.events import INTAKE_TYPES, Attributes, Contract, Event, validate

Headers: TypeAlias = Mapping[str, str]

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_NAME_LIMIT = 200
_ATTRIBUTES: TypeAdapter[dict[str, str]] = TypeAdapter(Attributes)


class Unauthorized(Exception):
    """The delivery is not proven to come from the platform: answer 401 and change nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotJson(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Ignored:
    """A genuine delivery that asks nothing of the trigger (a topic or status we do not act on)."""

    reason: str


MapResult: TypeAlias = list[Event[Contract]] | Ignored


@dataclass(frozen=True)
class Delivery:
    """One verified webhook request: its headers, raw body, the body parsed, and for whom."""

    tenant_id: str
    headers: Headers
    body: bytes
    payload: Any
    now: datetime


def header(headers: Headers, name: str) -> str | None:
    """Case-insensitive, whatever the mapping type: HTTP header names are."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def parse_json(body: bytes) -> Any:
    """Decimals stay exact and integers of any size stay integers (Shopify's ids exceed 2^53)."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except RecursionError:
        raise NotJson("body is not valid JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise NotJson(f"body is not valid JSON: {error}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def build_event(
    *, platform: str, delivery_id: str, event_type: str, delivery: Delivery, data: dict[str, Any]
) -> Event[Contract]:
    """A CloudEvent from a platform's fields, validated against its contract (raises InvalidEvent).
    The id is the platform's own delivery id, prefixed, so a retried delivery is a duplicate."""
    present = {name: value for name, value in data.items() if value is not None and value != ""}
    raw = {
        "specversion": "1.0",
        "id": f"{platform}:{delivery_id}",
        "source": f"/webhooks/{platform}",
        "type": event_type,
        "tenantid": delivery.tenant_id,
        "time": delivery.now.isoformat(),
        "subject": present.get("customer_id"),
        "data": present,
    }
    return validate(raw, allowed_types=INTAKE_TYPES)


def identifier(value: Any) -> str | None:
    """An id as our contracts carry it: a string. Integers go through ``str`` and never a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def object_at(value: Any, key: str) -> dict[str, Any]:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, dict) else {}


def email_as_customer(email: str | None) -> str | None:
    """Guests have no customer id: their address is the most stable identity they have."""
    return email.strip().lower() if email else None


def full_name(*parts: Any) -> str | None:
    name = " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    return name[:_NAME_LIMIT] or None


def locale(value: Any) -> str | None:
    """Only what our contract accepts as a locale; anything else is left out, not refused."""
    candidate = text(value)
    return candidate if candidate and _LOCALE.match(candidate) else None


def decimal_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return str(amount) if amount.is_finite() else None


def attributes(**values: Any) -> dict[str, str] | None:
    """Routing attributes from a platform's fields: the texts our contract accepts as attribute
    values; a missing or unfit one is left out, not refused. ``None`` when there are none."""
    found: dict[str, str] = {}
    for key, value in values.items():
        candidate = text(value)
        if candidate is None:
            continue
        try:
            _ATTRIBUTES.validate_python({key: candidate})
        except ValidationError:
            continue
        found[key] = candidate
    return found or None


def unix_time(value: Any) -> str | None:
    """Unix seconds (Stripe, Intercom) as the ISO 8601 UTC time our contracts carry."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None
