"""Who the people of the case desk are, what each may do, and the rules of signing in.

Pure: no I/O, ``now`` passed in."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    """A person's role at the case desk."""

    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    CX_MANAGER = "cx_manager"
    ADMIN = "admin"

    @property
    def sees_all_cases(self) -> bool:
        """Agents see their own and their team's cases; team leads, CX managers and admins all."""
        return self is not Role.AGENT

    @property
    def manages_people(self) -> bool:
        """Only admins add, change and deactivate people and teams."""
        return self is Role.ADMIN

    def may_see_case(
        self,
        *,
        user_id: uuid.UUID,
        team_ids: frozenset[uuid.UUID],
        assignee: uuid.UUID | None,
        team: uuid.UUID | None,
    ) -> bool:
        """Whether a person of this role (``user_id``, in ``team_ids``) may see a case assigned to
        ``assignee`` and placed with ``team``."""
        if self.sees_all_cases:
            return True
        return (assignee is not None and assignee == user_id) or (team is not None and team in team_ids)


#: A magic link works this long after it was sent, and once.
MAGIC_LINK_LIFETIME = timedelta(minutes=15)
#: A session lasts this long unless the service's settings say otherwise (``SESSION_HOURS``).
DEFAULT_SESSION_LIFETIME = timedelta(hours=12)
#: At most this many links per person in the window: a mailbox is not to be flooded by strangers.
SIGN_IN_LIMIT = 5
SIGN_IN_WINDOW = timedelta(minutes=15)

EMAIL_MAX_LENGTH = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(address: str) -> str:
    """One person, one address, however it is typed: surrounding space dropped, lower-cased."""
    return address.strip().lower()


def looks_like_email(address: str) -> bool:
    """Whether a normalised address is worth looking up: one ``@``, a dot in the domain, no spaces
    or control characters, and not longer than an address can be."""
    return (
        len(address) <= EMAIL_MAX_LENGTH
        and _EMAIL.match(address) is not None
        and not any(ord(character) < 32 or ord(character) == 127 for character in address)
    )


def link_expires_at(now: datetime) -> datetime:
    return now + MAGIC_LINK_LIFETIME


def link_usable(*, expires_at: datetime, used_at: datetime | None, now: datetime) -> bool:
    """A link works once, and only before it expires (the repository applies the same rule in one
    atomic UPDATE; this is its statement)."""
    return used_at is None and now < expires_at


def may_send_link(links_in_window: int) -> bool:
    """Whether another link may go to a person who was sent ``links_in_window`` in the last
    :data:`SIGN_IN_WINDOW`."""
    return links_in_window < SIGN_IN_LIMIT


def sign_in_window_start(now: datetime) -> datetime:
    return now - SIGN_IN_WINDOW


def session_expires_at(now: datetime, lifetime: timedelta = DEFAULT_SESSION_LIFETIME) -> datetime:
    return now + lifetime
