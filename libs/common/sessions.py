"""People's sessions, as every service with pages sees them.

A person signs in once, at the case desk (alerting), with a magic link. Alerting keeps the session
and publishes ``session.started`` (carrying only the token's SHA-256) and ``session.ended`` on
``nps.tenants``; reporting keeps its own copy from those events, so the same cookie opens the case
desk and the report, no service reads another's tables, and a session's secret is stored nowhere.
This is how API keys already travel (``libs/common/tenancy.py``).

The cookie holds ``<16 hex session id>.<43 url-safe chars>``: the id finds the row, the whole
token is hashed. Forms carry a CSRF token derived from the session token (an HMAC of it), so it
needs no storage, differs per session and cannot be computed without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Uuid, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.db import UnitOfWork
from libs.common.events import Event, SessionEnded, SessionStarted
from libs.common.kafka import EventHandler

COOKIE = "nps_session"
CSRF_FIELD = "csrf_token"
_TOKEN = re.compile(r"^([a-f0-9]{16})\.([A-Za-z0-9_-]{43})$")


def add_session_table(metadata: MetaData) -> Table:
    return Table(
        "web_sessions",
        metadata,
        Column("id", String(16), primary_key=True),
        Column("token_hash", String(64), nullable=False),
        Column("tenant_id", Uuid, nullable=False),
        Column("user_id", Uuid, nullable=False),
        Column("role", String(20), nullable=False),
        Column("name", String(200), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("ended_at", DateTime(timezone=True)),
        Index("ix_web_sessions_user", "user_id"),
    )


@dataclass(frozen=True, slots=True)
class NewSession:
    session_id: str
    token: str  # the cookie's value, never stored
    token_hash: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session() -> NewSession:
    session_id = secrets.token_hex(8)
    token = f"{session_id}.{secrets.token_urlsafe(32)}"
    return NewSession(session_id=session_id, token=token, token_hash=hash_token(token))


def csrf_token(session_token: str) -> str:
    """The form token of a session: an HMAC keyed by the session token, so it is the same on every
    page of the session and worthless without the cookie."""
    return hmac.new(session_token.encode(), b"nps-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)


@dataclass(frozen=True, slots=True)
class Person:
    """Who is signed in."""

    session_id: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    name: str
    token: str

    @property
    def sees_all(self) -> bool:
        """Agents see their own and their team's cases; team leads, CX managers and admins all."""
        return self.role != "agent"

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


async def person_of(
    session: AsyncSession, table: Table, cookie: str | None, now: datetime | None = None
) -> Person | None:
    """The person a session cookie belongs to, or ``None`` (no cookie, malformed, unknown, ended or
    expired). The comparison of hashes is constant-time."""
    match = _TOKEN.match(cookie or "")
    if match is None or cookie is None:
        return None
    row = (await session.execute(select(table).where(table.c.id == match.group(1)))).first()
    if row is None or not hmac.compare_digest(row.token_hash, hash_token(cookie)):
        return None
    if row.ended_at is not None or row.expires_at <= (now or datetime.now(UTC)):
        return None
    return Person(
        session_id=row.id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        role=row.role,
        name=row.name,
        token=cookie,
    )


def session_values(started: SessionStarted) -> Mapping[str, object]:
    return {
        "id": started.session_id,
        "token_hash": started.token_hash,
        "tenant_id": started.tenant_id,
        "user_id": started.user_id,
        "role": started.role,
        "name": started.name,
        "created_at": started.started_at,
        "expires_at": started.expires_at,
    }


async def store_session(session: AsyncSession, table: Table, started: SessionStarted) -> None:
    await session.execute(
        pg_insert(table).values(**session_values(started)).on_conflict_do_nothing(index_elements=["id"])
    )


async def end_session(session: AsyncSession, table: Table, session_id: str, at: datetime) -> None:
    await session.execute(
        update(table).where(table.c.id == session_id, table.c.ended_at.is_(None)).values(ended_at=at)
    )


def session_handlers(table: Table) -> dict[str, EventHandler]:
    """Handlers keeping a service's copy of the sessions in step with ``nps.tenants``."""

    async def started(event: Event[SessionStarted], uow: UnitOfWork[Any]) -> None:
        await store_session(uow.session, table, event.data)

    async def ended(event: Event[SessionEnded], uow: UnitOfWork[Any]) -> None:
        await end_session(uow.session, table, event.data.session_id, event.data.ended_at)

    return {SessionStarted.event_type: started, SessionEnded.event_type: ended}
