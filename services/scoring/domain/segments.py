"""The segments an answer counts in: a snapshot of who the customer was when they were asked.

Segments come from the answer's :class:`SurveyContext`: seven built-in dimensions, and up to
:data:`MAX_DECLARED` attribute keys a tenant declares on top. Values are case-sensitive as sent and
trimmed; an empty value is no value. A tenant x dimension holds at most :data:`MAX_VALUES` distinct
values: a value beyond them is counted under :data:`OTHER`, so a free-text attribute cannot turn
one answer into thousands of rows nobody can read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from libs.common.events import SurveyContext

#: Read from the context itself (``language``, ``account``) or from the attribute of that name.
BUILT_IN = ("country", "language", "channel", "store", "category", "plan", "account")
MAX_DECLARED = 5
MAX_VALUES = 200
MAX_CATEGORIES = 5
OTHER = "(other)"
#: Named as attribute keys are, so a declared dimension is an attribute key.
DIMENSION = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MAX_VALUE_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Attributes read by a built-in dimension other than its own name.
_CATEGORY_KEYS = ("category", "categories")


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    dimension: str
    value: str


def declared_problem(dimensions: Iterable[str]) -> str | None:
    """Why a tenant's declared dimensions are refused, or None when they are fine."""
    names = list(dimensions)
    if len(names) > MAX_DECLARED:
        return f"at most {MAX_DECLARED} dimensions, not {len(names)}"
    for name in names:
        if not DIMENSION.match(name):
            return f"dimension {name[:50]!r} must match {DIMENSION.pattern}"
        if name in BUILT_IN:
            return f"{name!r} is built in already"
    if len(set(names)) != len(names):
        return "each dimension once"
    return None


def _clean(value: str | None) -> str | None:
    """Trimmed, at most 200 characters; control characters (which an account id may carry, and
    which neither the API's ``segment`` parameter nor Postgres' JSON can hold) are left out."""
    if value is None:
        return None
    trimmed = _CONTROL.sub("", value).strip()[:_MAX_VALUE_LENGTH].strip()
    return trimmed or None


def _categories(attributes: Mapping[str, str]) -> list[str]:
    for key in _CATEGORY_KEYS:
        if key in attributes:
            values = (_clean(part) for part in attributes[key].split(","))
            return list(dict.fromkeys(value for value in values if value))[:MAX_CATEGORIES]
    return []


def _raw(context: SurveyContext, dimension: str) -> list[str]:
    if dimension == "category":
        return _categories(context.attributes)
    if dimension == "language":
        locale = context.locale
        value = _clean(re.split(r"[-_]", locale)[0].lower()) if locale else None
    elif dimension == "account":
        value = _clean(context.account_id)
    else:
        value = _clean(context.attributes.get(dimension))
    return [value] if value else []


def segments_of(context: SurveyContext | None, declared: Iterable[str] = ()) -> tuple[Segment, ...]:
    """The segments of an answer as sent, before the cardinality bound (see :class:`KnownValues`).

    One segment per dimension that has a value, except ``category``: an answer about several
    categories counts once in each (at most :data:`MAX_CATEGORIES`). Sorted, without repeats.
    """
    if context is None:
        return ()
    dimensions = dict.fromkeys([*BUILT_IN, *(d for d in declared if d not in BUILT_IN)])
    found = {Segment(dimension, value) for dimension in dimensions for value in _raw(context, dimension)}
    return tuple(sorted(found))


@dataclass(slots=True)
class KnownValues:
    """The values each tenant x dimension already holds, and the ones admitted since.

    ``known`` maps (tenant, dimension) to its values as stored; :meth:`bounded` admits a new value
    while the dimension holds fewer than :data:`MAX_VALUES`, and otherwise counts it as
    :data:`OTHER`. A value once admitted stays, so the same value always lands in the same cell.
    """

    known: Mapping[tuple[uuid.UUID, str], Set[str]]
    admitted: dict[tuple[uuid.UUID, str], list[str]] = field(default_factory=dict)

    def _admit(self, tenant: uuid.UUID, segment: Segment) -> Segment:
        key = (tenant, segment.dimension)
        stored = self.known.get(key, frozenset())
        added = self.admitted.setdefault(key, [])
        if segment.value in stored or segment.value in added:
            return segment
        if len(stored) + len(added) < MAX_VALUES:
            added.append(segment.value)
            return segment
        return Segment(segment.dimension, OTHER)

    def bounded(self, tenant: uuid.UUID, segments: Iterable[Segment]) -> tuple[Segment, ...]:
        """The segments an answer is counted in: each value known, newly admitted or ``(other)``."""
        return tuple(sorted({self._admit(tenant, segment) for segment in segments}))

    def new_values(self) -> list[tuple[uuid.UUID, Segment]]:
        return [
            (tenant, Segment(dimension, value))
            for (tenant, dimension), values in self.admitted.items()
            for value in values
        ]
