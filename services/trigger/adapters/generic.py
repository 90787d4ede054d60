"""Any system that can POST JSON and sign it with HMAC-SHA256: a per-endpoint mapping says which
event the body is and where each field sits.

A mapping::

    {"event_type": "purchase.completed.v1",
     "id": "delivery.id",
     "fields": {"order_id": "order.number", "customer_id": "customer.id", "email": "customer.email"},
     "signature": {"header": "X-Signature", "algorithm": "sha256", "encoding": "hex",
                   "prefix": "sha256="}}

A path is dotted: object keys, or list positions by number (``items.0.sku``). Without ``id``, the
delivery is named by the SHA-256 of its body, so a byte-identical retry is a duplicate.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from libs.common.events import (
    CONTRACTS,
    PURCHASE_COMPLETED,
    TICKET_CLOSED,
    InvalidEvent,
    describe_validation_error,
)
from services.trigger.adapters import signatures
from services.trigger.adapters.common import (
    Delivery,
    Headers,
    MapResult,
    Unauthorized,
    build_event,
    header,
    identifier,
)

PLATFORM = "generic"
EVENT_TYPES = (PURCHASE_COMPLETED, TICKET_CLOSED)
_SEGMENT = r"[A-Za-z0-9_$@-]{1,100}"
_PATH = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT}){{0,19}}$")
#: Fields whose values are amounts or flags; every other mapped field is text and takes numbers
#: as their exact digits.
_NOT_TEXT = frozenset({"amount", "test"})

Path = Annotated[str, StringConstraints(max_length=300)]


class MappingError(ValueError):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class SignatureSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    header: str = Field(default="X-Signature", pattern=r"^[A-Za-z0-9-]{1,100}$")
    algorithm: Literal["sha256"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field(default="", max_length=50)


class GenericMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: Literal["purchase.completed.v1", "ticket.closed.v1"]
    id: Path | None = None
    fields: dict[str, Path]
    signature: SignatureSpec = SignatureSpec()


def parse_mapping(raw: Any) -> GenericMapping:
    """Validate a mapping as a user sends it; the problem names the part that is wrong."""
    try:
        mapping = GenericMapping.model_validate(raw)
    except ValidationError as error:
        raise MappingError(describe_validation_error(error, "mapping.")) from None
    contract = CONTRACTS[mapping.event_type][0]
    known = contract.model_fields
    for name in mapping.fields:
        if name not in known:
            raise MappingError(
                f"mapping.fields: {name!r} is not a field of {mapping.event_type}; "
                f"known: {', '.join(sorted(known))}"
            )
    missing = [name for name, field in known.items() if field.is_required() and name not in mapping.fields]
    if missing:
        raise MappingError(f"mapping.fields: {', '.join(missing)} must be mapped for {mapping.event_type}")
    paths = {f"fields.{name}": path for name, path in mapping.fields.items()}
    if mapping.id is not None:
        paths["id"] = mapping.id
    for where, path in paths.items():
        if not _PATH.match(path):
            raise MappingError(
                f"mapping.{where}: {path!r} is not a dotted path like customer.email or items.0.sku"
            )
    return mapping


def resolve(document: Any, path: str) -> Any:
    """The value at a dotted path, or None where the document has nothing there."""
    value = document
    for segment in path.split("."):
        if isinstance(value, dict):
            value = value.get(segment)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value


def verify(secret: str, headers: Headers, body: bytes, now: datetime, spec: SignatureSpec) -> None:
    presented = header(headers, spec.header)
    if not presented:
        raise Unauthorized(f"missing {spec.header} header")
    presented = presented.strip()
    if spec.encoding == "hex":
        expected = signatures.hex_hmac(secret, body)
        # Hex digits are hex digits in either case; only the prefix is matched as written.
        candidate = presented[: len(spec.prefix)] + presented[len(spec.prefix) :].lower()
    else:
        expected = signatures.base64_hmac(secret, body)
        candidate = presented
    if not signatures.same(candidate, spec.prefix + expected):
        raise Unauthorized(f"{spec.header} does not match the body")


def map(delivery: Delivery, mapping: GenericMapping) -> MapResult:
    data = {
        name: _field_value(name, resolve(delivery.payload, path)) for name, path in mapping.fields.items()
    }
    if mapping.id is not None:
        delivery_id = identifier(resolve(delivery.payload, mapping.id))
        if delivery_id is None:
            raise InvalidEvent(f"id: the body has no id at {mapping.id}")
    else:
        delivery_id = "sha256-" + hashlib.sha256(delivery.body).hexdigest()
    return [
        build_event(
            platform=PLATFORM,
            delivery_id=delivery_id,
            event_type=mapping.event_type,
            delivery=delivery,
            data=data,
        )
    ]


def _field_value(name: str, value: Any) -> Any:
    if name in _NOT_TEXT or isinstance(value, bool):
        return str(value) if isinstance(value, Decimal) else value
    if isinstance(value, int | Decimal):
        return str(value)
    return value
