"""The machinery of a customer's right of access (``GET /v1/customers/{id}/data`` in every service,
gathered by the trigger's ``GET /v1/customers/{id}/export``): sections of rows, each capped.

Each repository builds its own queries (all SQL stays in the repositories); this runs one with a cap
and turns its rows into JSON-ready dictionaries, so an export's memory is bounded by
``SECTION_LIMIT`` rows a section whatever the customer holds.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

#: The development default of PRIVACY_HASH_KEY; production requires a real key.
DEV_PRIVACY_HASH_KEY = "dev-privacy-hash-key"


def normalised_address(email: str) -> str:
    """What counts as the same address: case and surrounding blanks never matter here."""
    return email.strip().lower()


def address_hash(key: str, email: str) -> str:
    """HMAC-SHA256 of the normalised address, 64 hex characters: what unsubscribe records keep
    instead of the address (services/survey/domain/suppression.py says why keyed)."""
    return hmac.new(key.encode(), normalised_address(email).encode(), hashlib.sha256).hexdigest()


#: Rows a section holds at most: the newest ones; ``truncated`` says when there were more.
SECTION_LIMIT = 1000

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
#: Any select, whatever its columns.
AnySelect: TypeAlias = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Section:
    """One kind of row held about a customer: the newest ``SECTION_LIMIT`` and whether that is all."""

    items: list[dict[str, Json]] = field(default_factory=list)
    truncated: bool = False

    def as_json(self) -> dict[str, Json]:
        return {"items": list(self.items), "truncated": self.truncated}


def json_value(value: object) -> Json:
    """Database values as JSON: ids and times as strings, amounts as exact decimal strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [json_value(v) for v in value]
    return str(value)


async def capped_section(
    session: AsyncSession, query: AnySelect, *, limit: int = SECTION_LIMIT, omit: Iterable[str] = ()
) -> Section:
    """Run ``query`` (already ordered newest first) for at most ``limit`` rows; ``omit`` names
    columns never given out (secrets such as token hashes)."""
    hidden = set(omit)
    rows = (await session.execute(query.limit(limit + 1))).mappings().all()
    items = [
        {str(name): json_value(value) for name, value in row.items() if name not in hidden}
        for row in rows[:limit]
    ]
    return Section(items, truncated=len(rows) > limit)


def sections_json(sections: Mapping[str, Section]) -> dict[str, Json]:
    return {name: section.as_json() for name, section in sections.items()}


class SectionView(BaseModel):
    items: list[dict[str, Any]] = Field(description="the rows, newest first, as the service keeps them")
    truncated: bool = Field(description="true when there are more than `section_limit` rows")


class CustomerPart(BaseModel):
    """A service's answer to ``GET /v1/customers/{id}/data``: the same shape in every service."""

    service: str
    customer_id: str
    section_limit: int
    sections: dict[str, SectionView]


def customer_part(service: str, customer_id: str, sections: Mapping[str, Section]) -> CustomerPart:
    return CustomerPart(
        service=service,
        customer_id=customer_id,
        section_limit=SECTION_LIMIT,
        sections={
            name: SectionView(items=section.items, truncated=section.truncated)
            for name, section in sections.items()
        },
    )


#: The path parameter every ``/v1/customers/{customer_id}/...`` route takes, as intake's ids.
CUSTOMER_ID_DOC = "the tenant's own customer id, as sent with its events (1-200 characters)"

DATA_ROUTE_DOC = """Everything this service holds about one customer of the calling tenant, as JSON: one
section per kind of row, each the newest `section_limit` rows with `truncated` true when there are
more. Another tenant's customer, or an unknown one, gives empty sections: a tenant sees only its
own rows, and cannot tell whether another tenant has a customer of that id. Secrets (survey link
tokens and their hashes) are never included. The trigger's `GET /v1/customers/{customer_id}/export`
gathers every service's part."""
