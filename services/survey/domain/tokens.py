"""Survey links. The token in a link is the only credential a respondent has, so it must be
unguessable; it is derived rather than random so that a re-send after a crash carries the same link.

token = base64url(HMAC-SHA256(secret, invitation id)): 256 bits, 43 url-safe characters. Only its
SHA-256 is stored, so a copy of the database does not hold working links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

TOKEN_LENGTH = 43
_TOKEN = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")


def survey_token(secret: str, invitation_id: uuid.UUID) -> str:
    digest = hmac.new(secret.encode(), invitation_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """What is stored and looked up. A plain hash suffices: the token has 256 bits of entropy."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check so that junk never reaches the database."""
    return _TOKEN.match(value) is not None


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
