"""The machinery of a customer's right of access (``GET /v1/customers/{id}/data`` in every service,
gathered by the trigger's ``GET /v1/customers/{id}/export``): sections of rows, read in keyset pages.

Each repository builds its own queries (all SQL stays in the repositories); this reads one page of
one at a time and turns its rows into JSON-ready dictionaries, so memory is bounded by a page
(``SECTION_LIMIT`` rows) whatever the customer holds, and the trigger follows every section's
pages to give the whole of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeAlias

from fastapi import HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from libs.common.http import error_body

#: The development default of PRIVACY_HASH_KEY; production requires a real key.
DEV_PRIVACY_HASH_KEY = "dev-privacy-hash-key"


def normalised_address(email: str) -> str:
    """What counts as the same address: case and surrounding blanks never matter here."""
    return email.strip().lower()


def address_hash(key: str, email: str) -> str:
    """HMAC-SHA256 of the normalised address, 64 hex characters: what unsubscribe records keep
    instead of the address (services/survey/domain/suppression.py says why keyed)."""
    return hmac.new(key.encode(), normalised_address(email).encode(), hashlib.sha256).hexdigest()


#: Rows a page of a section holds at most (``limit`` of ``/data``, and its default).
SECTION_LIMIT = 1000

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
#: Any select, whatever its columns.
AnySelect: TypeAlias = Select[*tuple[Any, ...]]


class PageRequestError(ValueError):
    """A page that cannot be given: an unknown section, or a cursor this service did not write."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class KeysetSection:
    """One kind of row held about a customer, read a page at a time.

    ``query`` selects the customer's rows (filtered, neither ordered nor limited); ``keyset`` names
    columns that are never null and unique together: pages run down them, greatest first, and an
    index must serve ``WHERE <the query's filter> AND (keyset) < (cursor) ORDER BY keyset DESC``.
    ``omit`` names columns never given out (secrets such as token hashes)."""

    query: AnySelect
    keyset: tuple[ColumnElement[Any] | QueryableAttribute[Any], ...]
    omit: tuple[str, ...] = ()

    def columns(self) -> list[ColumnElement[Any]]:
        return [
            key.__clause_element__() if isinstance(key, QueryableAttribute) else key for key in self.keyset
        ]


@dataclass(frozen=True)
class Section:
    """One page of a section: its rows, and the cursor of the next page when there are more."""

    items: list[dict[str, Json]] = field(default_factory=list)
    next: str | None = None

    @property
    def truncated(self) -> bool:
        return self.next is not None


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


def encode_cursor(values: Sequence[object]) -> str:
    """The opaque cursor of a page's last row: its keyset values, as URL-safe base64 of JSON."""
    packed = json.dumps([json_value(value) for value in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keyset: Sequence[ColumnElement[Any]]) -> list[Any]:
    """The keyset values of a cursor, typed as the columns are; :class:`PageRequestError` if it is
    not one this service wrote for this section."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(keyset):
            raise ValueError("wrong length")
        return [_typed(column, value) for column, value in zip(keyset, values, strict=True)]
    except (ValueError, TypeError, RecursionError, binascii.Error):
        raise PageRequestError("after", "not a cursor of this section") from None


def _typed(column: ColumnElement[Any], value: object) -> object:
    """A cursor's value as its column's type. What Postgres would refuse (a time without its zone,
    an integer past 64 bits, a NUL character) is refused here, as not a cursor."""
    kind = column.type.python_type
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError("a cursor holds strings and numbers")
    if kind is int:
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise ValueError("past 64 bits")
        return number
    text = str(value)
    if "\x00" in text:
        raise ValueError("a NUL character")
    if kind is datetime:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("a time without its zone")
        return moment
    if kind is date:
        return date.fromisoformat(text)
    if kind is uuid.UUID:
        return uuid.UUID(text)
    return text


async def section_page(
    session: AsyncSession, section: KeysetSection, *, after: str | None = None, limit: int = SECTION_LIMIT
) -> Section:
    """One page of ``section``: at most ``limit`` rows after the cursor ``after`` (the first page
    without it), greatest keyset first, and the cursor of the next page if there is one."""
    keyset = section.columns()
    labels = [f"_keyset_{i}" for i in range(len(keyset))]
    query = section.query.add_columns(
        *(column.label(name) for column, name in zip(keyset, labels, strict=True))
    )
    if after is not None:
        values = decode_cursor(after, keyset)
        bound = [literal(value, column.type) for column, value in zip(keyset, values, strict=True)]
        query = query.where(tuple_(*keyset) < tuple_(*bound) if len(keyset) > 1 else keyset[0] < bound[0])
    query = query.order_by(*(column.desc() for column in keyset)).limit(limit + 1)
    rows = (await session.execute(query)).mappings().all()
    hidden = {*section.omit, *labels}
    items = [
        {str(name): json_value(value) for name, value in row.items() if name not in hidden}
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return Section(items, encode_cursor([rows[limit - 1][name] for name in labels]) if more else None)


async def customer_pages(
    session: AsyncSession,
    sections: Mapping[str, KeysetSection],
    *,
    section: str | None = None,
    after: str | None = None,
    limit: int = SECTION_LIMIT,
) -> dict[str, Section]:
    """The first page of every section, or the page of ``section`` after ``after``."""
    if section is None:
        if after is not None:
            raise PageRequestError("after", "a cursor belongs to one section: name it with `section`")
        return {name: await section_page(session, each, limit=limit) for name, each in sections.items()}
    if section not in sections:
        raise PageRequestError("section", f"no such section; this service has {', '.join(sections)}")
    return {section: await section_page(session, sections[section], after=after, limit=limit)}


class SectionView(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="the rows of this page, greatest keyset (mostly newest) first"
    )
    truncated: bool = Field(description="true when there are more rows than this page: `next` pages on")
    next: str | None = Field(
        None,
        description="the opaque cursor of the next page (`?section=<name>&after=<next>`); null at the end",
    )


class CustomerPart(BaseModel):
    """A service's answer to ``GET /v1/customers/{id}/data``: the same shape in every service."""

    service: str
    customer_id: str
    section_limit: int
    sections: dict[str, SectionView]


def customer_part(
    service: str, customer_id: str, sections: Mapping[str, Section], *, limit: int = SECTION_LIMIT
) -> CustomerPart:
    return CustomerPart(
        service=service,
        customer_id=customer_id,
        section_limit=limit,
        sections={
            name: SectionView(items=section.items, truncated=section.truncated, next=section.next)
            for name, section in sections.items()
        },
    )


async def data_answer(
    service: str, customer_id: str, read: Callable[[], Awaitable[Mapping[str, Section]]], *, limit: int
) -> CustomerPart:
    """A ``/data`` route's answer: ``read``'s sections, or 422 ``invalid_page`` naming the field."""
    try:
        sections = await read()
    except PageRequestError as bad:
        raise HTTPException(
            422, error_body("invalid_page", str(bad), [{"field": f"query.{bad.field}", "message": str(bad)}])
        ) from None
    return customer_part(service, customer_id, sections, limit=limit)


SectionParam = Annotated[
    str | None,
    Query(
        max_length=60,
        description="one section only (its name in `sections`); with `after`, the page after it",
    ),
]
AfterParam = Annotated[
    str | None, Query(max_length=2000, description="the `next` cursor of the section's previous page")
]
LimitParam = Annotated[int, Query(ge=1, le=SECTION_LIMIT, description="rows a page holds at most")]

#: The path parameter every ``/v1/customers/{customer_id}/...`` route takes, as intake's ids.
CUSTOMER_ID_DOC = "the tenant's own customer id, as sent with its events (1-200 characters)"

DATA_ROUTE_DOC = """Everything this service holds about one customer of the calling tenant, as JSON, a page
at a time: one section per kind of row, each its first `limit` rows (greatest keyset, mostly newest,
first) with `truncated` true and `next` a cursor when there are more; `?section=<name>&after=<next>`
gives the next page of that section, and only that section. Pages run down keys that never change,
so a row comes once however the pages are spread in time. Another tenant's customer, or an unknown
one, gives empty sections: a tenant sees only its own rows, and cannot tell whether another tenant
has a customer of that id. Secrets (survey link tokens and their hashes) are never included. The
trigger's `GET /v1/customers/{customer_id}/export` gathers every service's part, following every
page."""
