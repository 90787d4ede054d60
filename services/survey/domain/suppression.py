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

import hashlib
import hmac

#: The development default. Outside development a real key is required (``SurveySettings``).
DEV_PRIVACY_HASH_KEY = "dev-privacy-hash-key"


def normalised_address(email: str) -> str:
    """What counts as the same address: case and surrounding blanks never matter to a mailbox here."""
    return email.strip().lower()


def address_hash(key: str, email: str) -> str:
    """64 hex characters; the same address (in any case) gives the same hash."""
    return hmac.new(key.encode(), normalised_address(email).encode(), hashlib.sha256).hexdigest()
