"""What the customers said: an answer's segments, its NPS group, and the feed's page cursor.

An answer's segments are the snapshot its survey context took at survey time (the rule of
``spec11``, which scoring applies to count cells): ``language`` is the primary subtag of the
locale, lower-case; ``account`` the account id; ``category`` the comma-separated values of the
attribute ``category`` (else ``categories``), at most 5; the other built-in dimensions, and any a
tenant declares, the attribute of that name. Values are trimmed; an empty one is absent.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.common.events import HIGHEST_SCORE, LOWEST_SCORE, NpsCategory, nps_category

#: The dimensions every tenant has; ``language``, ``account`` and ``category`` have rules of their own.
BUILT_IN_DIMENSIONS = ("country", "language", "channel", "store", "category", "plan", "account")
#: The dimensions taken as they are from the attribute of the same name.
PLAIN_ATTRIBUTE_DIMENSIONS = ("country", "channel", "store", "plan")
MAX_CATEGORIES = 5
#: A cursor is short; a longer token is refused before decoding it.
MAX_CURSOR_LENGTH = 200
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def language_of(locale: str | None) -> str | None:
    """``da-DK`` -> ``da``; ``pt_BR`` -> ``pt``."""
    if not locale:
        return None
    primary = locale.replace("_", "-").split("-", 1)[0].strip().lower()
    return primary or None


def categories_of(attributes: Mapping[str, str]) -> list[str]:
    """The answer's categories: ``category`` (else ``categories``) split on commas, at most 5."""
    raw = attributes.get("category") or attributes.get("categories") or ""
    values = [part.strip() for part in raw.split(",")]
    return [value for value in values if value][:MAX_CATEGORIES]


def segments_of(
    locale: str | None, account_id: str | None, attributes: Mapping[str, str] | None
) -> dict[str, str]:
    """The built-in segments of an answer, by dimension; several categories are joined by ``,``."""
    attributes = attributes or {}
    found: dict[str, str | None] = {
        name: (attributes.get(name) or "").strip() for name in PLAIN_ATTRIBUTE_DIMENSIONS
    }
    found["language"] = language_of(locale)
    found["account"] = account_id.strip() if account_id else None
    found["category"] = ",".join(categories_of(attributes))
    return {name: value for name in BUILT_IN_DIMENSIONS if (value := found.get(name))}


def scores_in(category: NpsCategory) -> list[int]:
    """The scores of an NPS group, as :func:`nps_category` draws them."""
    return [score for score in range(LOWEST_SCORE, HIGHEST_SCORE + 1) if nps_category(score) == category]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page of the feed ended: the last answer's time and id (the feed's order)."""

    responded_at: datetime
    response_id: uuid.UUID


class InvalidCursor(ValueError):
    pass


def encode_cursor(position: Position) -> str:
    """An opaque token (base64url, no padding) of the position."""
    raw = f"{position.responded_at.astimezone(UTC).isoformat()}|{position.response_id}"
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(token: str) -> Position:
    """The position a token names; :class:`InvalidCursor` when it is not one this feed made."""
    if len(token) > MAX_CURSOR_LENGTH or not _BASE64URL.fullmatch(token):
        raise InvalidCursor("not a cursor this feed returned")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        when, separator, response_id = raw.partition("|")
        responded_at = datetime.fromisoformat(when)
        position = Position(responded_at, uuid.UUID(response_id))
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("not a cursor this feed returned") from error
    if not separator or responded_at.tzinfo is None:
        raise InvalidCursor("not a cursor this feed returned")
    return position
