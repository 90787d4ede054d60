"""Unsubscribes kept by address, without the address.

An unsubscribe that names an address (a customer's, or one no customer has yet) is also kept as a
customer record of its own whose id is ``email:`` and the address's keyed hash
(``libs/common/privacy.py``). It names nobody, and it outlives the erasure of the customers who had
that address, so a later order under a new customer id with the same address is still not asked.
"""

from __future__ import annotations

from libs.common.privacy import address_hash

ADDRESS_RECORD_PREFIX = "email:"


def address_record(key: str, email: str) -> str:
    """The customer id of the unsubscribe record of ``email`` (in any case)."""
    return ADDRESS_RECORD_PREFIX + address_hash(key, email)
