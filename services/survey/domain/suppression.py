"""Which addresses a tenant must not email, kept without keeping the addresses.

A suppression (an unsubscribe, a hard bounce, a complaint) must outlive the customer's erasure, or
the next order after an erasure would email someone who asked never to be emailed again. So the
list holds HMAC-SHA256(PRIVACY_HASH_KEY, normalised address), never the address: a copy of the
table names nobody, and checking an address is one equality on an indexed column.

Why keyed rather than a plain SHA-256: addresses are guessable (a list of a tenant's customers, a
company's naming scheme), so a plain hash is reversed by hashing the guesses. With the key kept
outside the database, a dump alone confirms nothing. Changing the key forgets every suppression,
so it is kept like the survey token secret.
"""

from __future__ import annotations

# The hash is shared with the trigger (its unsubscribe records by address), so it lives beside the
# other privacy machinery.
from libs.common.privacy import DEV_PRIVACY_HASH_KEY, address_hash, normalised_address

__all__ = ["DEV_PRIVACY_HASH_KEY", "address_hash", "normalised_address"]
