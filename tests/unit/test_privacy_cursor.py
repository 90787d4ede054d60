"""The export's page cursors: a page's last keyset values come back as the columns' own types, and
anything this service did not write (tampered, another section's, values Postgres would refuse) is
refused as a 422, never passed to the database."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import ColumnElement

from libs.common.privacy import PageRequestError, decode_cursor, encode_cursor
from services.survey.models import Response
from services.trigger.models import Decision

#: As the repositories pass them: the section's keyset columns.
DECISIONS = cast(list[ColumnElement[Any]], [Decision.decided_at.expression, Decision.id.expression])


def _raw(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_a_cursor_gives_back_the_keyset_values_as_their_types() -> None:
    at, answer = datetime(2024, 5, 1, 12, 30, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor([at, 42]), DECISIONS) == [at, 42]
    keyset = cast(list[ColumnElement[Any]], [Response.responded_at.expression, Response.id.expression])
    assert decode_cursor(encode_cursor([at, answer]), keyset) == [at, answer]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 !",
        _raw({"at": 1}),
        _raw(["2024-05-01T12:30:00+00:00"]),
        _raw(["2024-05-01T12:30:00", 1]),
        _raw(["2024-05-01T12:30:00+00:00", 2**64]),
        _raw(["2024-05-01T12:30:00+00:00", True]),
        _raw(["2024-05-01T12:30:00+00:00", [1]]),
        _raw(["2024-05-01T12:30:00+00:00\x00", 1]),
        _raw([[[[[[]]]]]] * 2),
        "W" * 1500,
    ],
)
def test_anything_else_is_refused(cursor: str) -> None:
    with pytest.raises(PageRequestError) as refused:
        decode_cursor(cursor, DECISIONS)
    assert refused.value.field == "after"
