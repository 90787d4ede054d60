"""Sealing DLQ copies: what opens, what does not, and who a raw message is about."""

from __future__ import annotations

import json
import uuid

import pytest

from libs.common import sealing

TENANT = "0b7c5c1e-4f4e-4c53-9d1a-2f1f4b0e9a11"


def test_a_sealed_copy_opens_only_with_its_key_and_its_id() -> None:
    key, key_id = sealing.new_key(), uuid.uuid4()
    plaintext = b'{"data": {"email": "ann@example.com"}}'
    sealed = sealing.seal(key, key_id, plaintext)
    assert b"ann@example.com" not in sealed
    assert sealing.unseal(key, key_id, sealed) == plaintext
    # A fresh nonce each time: the same message never seals to the same bytes.
    assert sealing.seal(key, key_id, plaintext) != sealed
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(sealing.new_key(), key_id, sealed)
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(key, uuid.uuid4(), sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(key, key_id, tampered)


def test_key_references_name_a_schema_and_a_key() -> None:
    key_id = uuid.uuid4()
    assert sealing.parse_key_reference(sealing.key_reference("trigger", key_id)) == ("trigger", key_id)
    assert sealing.parse_key_reference(b"trigger/not-a-uuid") is None
    assert sealing.parse_key_reference(b"/" + str(key_id).encode()) is None
    assert sealing.parse_key_reference(b"\xff\xfe") is None


@pytest.mark.parametrize(
    ("value", "headers", "expected"),
    [
        (
            json.dumps({"tenantid": TENANT, "data": {"customer_id": "c-1", "email": "a@b.se"}}).encode(),
            [],
            sealing.Attribution(TENANT, "c-1"),
        ),
        # Binary mode: the tenant in a header, the value is the data.
        (
            json.dumps({"customer_id": "c-2"}).encode(),
            [("ce_specversion", b"1.0"), ("ce_tenantid", TENANT.encode())],
            sealing.Attribution(TENANT, "c-2"),
        ),
        # Cut short (a truncated copy of a huge message): found as text.
        (
            f'{{"tenantid": "{TENANT}", "data": {{"customer_id": "c-3", "comment": "xxxx'.encode(),
            [],
            sealing.Attribution(TENANT, "c-3"),
        ),
        (b"not json at all, ann@example.com", [], sealing.Attribution(None, None)),
        (json.dumps({"tenantid": "T", "data": {"customer_id": 7}}).encode(), [], sealing.Attribution()),
        (json.dumps([1, 2]).encode(), [], sealing.Attribution()),
        (
            json.dumps({"tenantid": TENANT, "data": {"customer_id": "x" * 201}}).encode(),
            [],
            sealing.Attribution(TENANT),
        ),
    ],
)
def test_whose_message_is_told_from_the_message_only(
    value: bytes, headers: list[tuple[str, bytes]], expected: sealing.Attribution
) -> None:
    assert sealing.attribute(value, headers) == expected


def test_an_id_the_database_cannot_keep_is_not_attributed() -> None:
    value = json.dumps({"tenantid": TENANT, "data": {"customer_id": "a\x00b"}}).encode()
    assert sealing.attribute(value, []) == sealing.Attribution(TENANT)
