"""People, teams and signing in: the commands the people API, the sign-in pages and the CLI call.

They change the unit of work and record outgoing events; they never commit. Signing in publishes
``session.started`` (only the token's SHA-256) and signing out or deactivating ``session.ended``
on ``nps.tenants``, so reporting's copy of the sessions follows."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.common.db import UnitOfWork
from libs.common.events import SessionEnded, SessionStarted
from libs.common.sessions import Person, hash_token, new_session, store_session
from services.alerting.domain import people
from services.alerting.domain.people import Role
from services.alerting.models import SESSIONS, MagicLink, Team, TeamMember, User
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)

Uow = UnitOfWork[AlertingRepository]

#: Where a link may lead is kept with the link, up to this long (the column's size).
NEXT_PATH_MAX = 500


class UserExists(Exception):
    def __init__(self, email: str) -> None:
        super().__init__(f"a user with the address {email} exists already")


class TeamExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a team named {name!r} exists already")


class UserNotFound(Exception):
    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"no user {user_id}")


class TeamNotFound(Exception):
    def __init__(self, team_id: uuid.UUID) -> None:
        super().__init__(f"no team {team_id}")


class UnknownLead(Exception):
    """The team lead named is not a user of the tenant."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"lead_user_id: no user {user_id}")


async def create_user(
    uow: Uow, *, tenant_id: uuid.UUID, email: str, name: str, role: Role, now: datetime
) -> User:
    address = people.normalise_email(email)
    user = User(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        email=address,
        name=name.strip(),
        role=role.value,
        active=True,
        created_at=now,
        updated_at=now,
    )
    if not await uow.repository.insert_user(user):
        raise UserExists(address)
    log.info("user.created", extra={"tenant_id": str(tenant_id), "user_id": str(user.id)})
    return user


async def update_user(
    uow: Uow,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's name, role or whether they may sign in. Deactivating, or changing the role
    (which the sessions carry), ends the user's sessions everywhere."""
    user = await uow.repository.get_user(tenant_id, user_id, for_update=True)
    if user is None:
        raise UserNotFound(user_id)
    ends_sessions = (active is False and user.active) or (role is not None and role.value != user.role)
    if name is not None:
        user.name = name.strip()
    if role is not None:
        user.role = role.value
    if active is not None:
        user.active = active
    user.updated_at = now
    await uow.session.flush()
    if ends_sessions:
        await end_sessions_of(uow, tenant_id=tenant_id, user_id=user_id, now=now)
    log.info("user.updated", extra={"tenant_id": str(tenant_id), "user_id": str(user_id)})
    return user


async def end_sessions_of(uow: Uow, *, tenant_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> int:
    """End the user's open sessions here and, by ``session.ended``, in every other service."""
    ended = await uow.repository.end_sessions_of_user(tenant_id, user_id, now)
    for session_id in ended:
        _emit_ended(uow, tenant_id, session_id, now)
    return len(ended)


def _emit_ended(uow: Uow, tenant_id: uuid.UUID, session_id: str, now: datetime) -> None:
    # Keyed by the tenant, as the rest of nps.tenants: a session's start and end stay in order.
    uow.emit(
        SessionEnded(session_id=session_id, tenant_id=tenant_id, ended_at=now),
        tenant_id=tenant_id,
        subject=str(tenant_id),
    )


async def _check_lead(uow: Uow, tenant_id: uuid.UUID, lead_user_id: uuid.UUID | None) -> None:
    if lead_user_id is not None and await uow.repository.get_user(tenant_id, lead_user_id) is None:
        raise UnknownLead(lead_user_id)


async def create_team(
    uow: Uow, *, tenant_id: uuid.UUID, name: str, lead_user_id: uuid.UUID | None, now: datetime
) -> Team:
    await _check_lead(uow, tenant_id, lead_user_id)
    team = Team(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=name.strip(),
        lead_user_id=lead_user_id,
        created_at=now,
        updated_at=now,
    )
    if not await uow.repository.insert_team(team):
        raise TeamExists(team.name)
    log.info("team.created", extra={"tenant_id": str(tenant_id), "team_id": str(team.id)})
    return team


@dataclass(frozen=True, slots=True)
class TeamChange:
    """What to change of a team: ``name`` if given; the lead if ``set_lead`` (``None`` removes it)."""

    name: str | None = None
    set_lead: bool = False
    lead_user_id: uuid.UUID | None = None


async def update_team(
    uow: Uow, *, tenant_id: uuid.UUID, team_id: uuid.UUID, change: TeamChange, now: datetime
) -> Team:
    team = await uow.repository.get_team(tenant_id, team_id, for_update=True)
    if team is None:
        raise TeamNotFound(team_id)
    if change.name is not None:
        name = change.name.strip()
        if await uow.repository.team_name_taken(tenant_id, name, other_than=team_id):
            raise TeamExists(name)
        team.name = name
    if change.set_lead:
        await _check_lead(uow, tenant_id, change.lead_user_id)
        team.lead_user_id = change.lead_user_id
    team.updated_at = now
    await uow.session.flush()
    return team


async def delete_team(uow: Uow, *, tenant_id: uuid.UUID, team_id: uuid.UUID) -> None:
    if not await uow.repository.delete_team(tenant_id, team_id):
        raise TeamNotFound(team_id)
    log.info("team.deleted", extra={"tenant_id": str(tenant_id), "team_id": str(team_id)})


async def add_member(
    uow: Uow, *, tenant_id: uuid.UUID, team_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> bool:
    """Make the user a member of the team; false when they were one already."""
    if await uow.repository.get_team(tenant_id, team_id) is None:
        raise TeamNotFound(team_id)
    if await uow.repository.get_user(tenant_id, user_id) is None:
        raise UserNotFound(user_id)
    member = TeamMember(team_id=team_id, user_id=user_id, tenant_id=tenant_id, joined_at=now)
    return await uow.repository.add_member(member)


async def remove_member(uow: Uow, *, tenant_id: uuid.UUID, team_id: uuid.UUID, user_id: uuid.UUID) -> None:
    if await uow.repository.get_team(tenant_id, team_id) is None:
        raise TeamNotFound(team_id)
    if not await uow.repository.remove_member(tenant_id, team_id, user_id):
        raise UserNotFound(user_id)


@dataclass(frozen=True, slots=True)
class SignInLink:
    """One link to send: the token is in nobody's storage, only here, until the email goes."""

    tenant_id: uuid.UUID
    tenant_name: str
    user_name: str
    token: str


async def request_sign_in(uow: Uow, *, email: str, next_url: str | None, now: datetime) -> list[SignInLink]:
    """A one-time link for every active user with the address (one per tenant they work for),
    each stored only as its SHA-256. A person sent too many links lately gets none this time.
    Nothing tells the caller whether the address is known: the page says the same either way."""
    address = people.normalise_email(email)
    if not people.looks_like_email(address):
        return []
    users = await uow.repository.active_users_with_email(address)
    names = await uow.repository.tenant_display_names({user.tenant_id for user in users})
    next_path = next_url if next_url is not None and len(next_url) <= NEXT_PATH_MAX else None
    links: list[SignInLink] = []
    for user in users:
        sent = await uow.repository.links_sent_since(user.id, people.sign_in_window_start(now))
        if not people.may_send_link(sent):
            log.warning(
                "signin.rate_limited", extra={"tenant_id": str(user.tenant_id), "user_id": str(user.id)}
            )
            continue
        token = secrets.token_urlsafe(32)
        link = MagicLink(
            token_hash=hash_token(token),
            tenant_id=user.tenant_id,
            user_id=user.id,
            next_path=next_path,
            created_at=now,
            expires_at=people.link_expires_at(now),
        )
        await uow.repository.insert_magic_link(link)
        links.append(SignInLink(user.tenant_id, names.get(user.tenant_id, "?"), user.name, token))
    return links


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A session just started: the cookie's value (stored nowhere), until when, and where to go."""

    cookie: str
    expires_at: datetime
    next_url: str | None
    person_name: str


async def complete_sign_in(uow: Uow, *, token: str, now: datetime, lifetime: timedelta) -> SignedIn | None:
    """Use a magic link, once: start a session for its user, here and (by ``session.started``) in
    every service with pages. ``None`` when the link is forged, expired or used, or its user has
    been deactivated since."""
    if not token or len(token) > 100:
        return None
    used = await uow.repository.use_magic_link(hash_token(token), now)
    if used is None:
        return None
    user = await uow.repository.get_user(used.tenant_id, used.user_id)
    if user is None or not user.active:
        return None
    session = new_session()
    started = SessionStarted(
        session_id=session.session_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        role=Role(user.role).value,
        name=user.name,
        token_hash=session.token_hash,
        started_at=now,
        expires_at=people.session_expires_at(now, lifetime),
    )
    await store_session(uow.session, SESSIONS, started)
    uow.emit(started, tenant_id=user.tenant_id, subject=str(user.tenant_id))
    log.info("signin.completed", extra={"tenant_id": str(user.tenant_id), "user_id": str(user.id)})
    return SignedIn(session.token, started.expires_at, used.next_path, user.name)


async def sign_out(uow: Uow, person: Person, now: datetime) -> None:
    """End the person's session here and everywhere else."""
    if await uow.repository.end_session(person.tenant_id, person.session_id, now):
        _emit_ended(uow, person.tenant_id, person.session_id, now)
    log.info("signout.completed", extra={"tenant_id": str(person.tenant_id), "user_id": str(person.user_id)})
