"""The DLQ metric's ``reason`` label is a closed set: whatever a message holds, the code that
reaches the label is one of DLQ_CODES, and words (the reason a person reads) never do."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from libs.common.events import InvalidCode, InvalidEvent, decode_kafka
from libs.common.kafka import DLQ_CODES, dlq_label

pytestmark = pytest.mark.unit

GOOD = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "/tests",
    "type": "purchase.completed.v1",
    "tenantid": "00000000-0000-4000-8000-000000000000",
    "data": {"order_id": "1", "customer_id": "c"},
}


def _with(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


@pytest.mark.parametrize(
    ("headers", "payload", "code"),
    [
        ([], None, "undecodable"),
        ([], b"{this is not json", "undecodable"),
        ([], b"\xff\xfe", "undecodable"),
        ([], b"[1, 2, 3]", "undecodable"),
        ([("ce_specversion", b"1.0"), ("ce_type", b"\xff")], b"{}", "undecodable"),
        ([("ce_specversion", b"1.0")], b"not json", "undecodable"),
        ([], _with(specversion="0.3"), "invalid_envelope"),
        ([], _with(id=None), "invalid_envelope"),
        ([], _with(type="order.shipped.v1"), "unknown_type"),
        ([], _with(data={"order_id": "1"}), "invalid_data"),
        ([], _with(data={"order_id": "1\u0000", "customer_id": "c"}), "nul_character"),
    ],
)
def test_every_way_an_event_is_refused_has_a_code_from_the_closed_set(
    headers: list[tuple[str, bytes]], payload: bytes | None, code: str
) -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode_kafka(headers, payload)
    assert refused.value.code == code
    assert dlq_label(refused.value.code) == code


def test_a_tenantid_that_is_no_tenant_id_is_an_invalid_envelope() -> None:
    event = decode_kafka([], _with(tenantid="not-a-uuid"))
    with pytest.raises(InvalidEvent) as refused:
        _ = event.tenant
    assert refused.value.code == "invalid_envelope"


def test_the_label_refuses_words_and_every_invalid_code_is_a_dlq_code() -> None:
    assert set(get_args(InvalidCode)) <= DLQ_CODES
    for words in ("data.customer_id: Field required", "invalid", "", "too_large " * 3):
        with pytest.raises(ValueError, match="not a DLQ code"):
            dlq_label(words)
    assert {
        "too_large",
        "undecodable",
        "invalid_envelope",
        "unknown_type",
        "invalid_data",
        "nul_character",
        "rejected",
        "handler_failed",
        "unknown_tenant",
    } == DLQ_CODES
