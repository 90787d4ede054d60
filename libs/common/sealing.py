"""Dead-letter copies sealed under keys the platform can forget (crypto-shredding).

A Kafka topic is an append-only log: a copy on ``<topic>.dlq`` cannot be rewritten when the customer
it is about is erased, and DLQs are the topics operators keep longest. So a DLQ copy's value is
encrypted (AES-256-GCM, a fresh key per copy) and the key is kept in the dead-lettering service's own
schema (table ``dlq_keys``), with whose message it is: the tenant and the customer id, as far as the
message says. Erasing that customer deletes the key, and the copy on the broker becomes noise. A copy
whose customer cannot be told (not JSON, no ``customer_id``) keeps its key for
``DLQ_UNATTRIBUTED_KEY_DAYS`` only.

This module is pure: the cipher, and who a raw message is about. The key rows and the reading
are in :mod:`libs.common.dead_letters` and the consumer runner.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Headers of a sealed copy: the scheme, and where its key is (``<schema>/<key id>``).
SEALED_HEADER = "nps-dlq-sealed"
KEY_HEADER = "nps-dlq-key"
SCHEME = "aes-256-gcm/v1"
_NONCE_BYTES = 12
_ID_LIMIT = 200

_TENANT_PATTERN = re.compile(rb'"tenantid"\s*:\s*"([0-9a-fA-F-]{36})"')
_CUSTOMER_PATTERN = re.compile(rb'"customer_id"\s*:\s*"([^"\\]{1,200})"')


class SealBroken(Exception):
    """The copy is not what was sealed under this key (altered, or another key's)."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, key_id: uuid.UUID, plaintext: bytes) -> bytes:
    """``nonce || ciphertext+tag``, bound to its key id (the associated data)."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, key_id.bytes)


def unseal(key: bytes, key_id: uuid.UUID, sealed: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], key_id.bytes)
    except (InvalidTag, ValueError) as error:
        raise SealBroken("the copy does not open with its key") from error


def key_reference(schema: str, key_id: uuid.UUID) -> bytes:
    return f"{schema}/{key_id}".encode()


def parse_key_reference(value: bytes) -> tuple[str, uuid.UUID] | None:
    try:
        schema, _, key_id = value.decode().partition("/")
        return (schema, uuid.UUID(key_id)) if schema else None
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True)
class Attribution:
    """Whose message this is, as far as it says: the tenant (a UUID) and the tenant's customer id."""

    tenant_id: str | None = None
    customer_id: str | None = None


def attribute(value: bytes, headers: list[tuple[str, bytes]]) -> Attribution:
    """Who a raw message is about: a structured CloudEvent's ``tenantid`` and ``data.customer_id``,
    or a binary-mode one's ``ce_tenantid`` header and its value's ``customer_id``. A message that is
    not JSON (or is cut short) is searched for the same two fields as text; nothing else is guessed."""
    header = {name: raw for name, raw in headers}
    tenant = _text(header.get("ce_tenantid"))
    customer: str | None = None
    try:
        body = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None
    if isinstance(body, dict):
        tenant = tenant or _string(body.get("tenantid"))
        data = body if "ce_specversion" in header else body.get("data")
        if isinstance(data, dict):
            customer = _string(data.get("customer_id"))
    else:
        if tenant is None and (found := _TENANT_PATTERN.search(value)):
            tenant = found.group(1).decode()
        if found := _CUSTOMER_PATTERN.search(value):
            customer = _text(found.group(1))
    if tenant is not None:
        try:
            tenant = str(uuid.UUID(tenant))
        except ValueError:
            tenant = None
    return Attribution(tenant, customer)


def _string(value: object) -> str | None:
    """An id as the database can keep it: a refused event's may hold a NUL, which it cannot."""
    if isinstance(value, str) and 0 < len(value) <= _ID_LIMIT and "\x00" not in value:
        return value
    return None


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return _string(raw.decode())
    except UnicodeDecodeError:
        return None
