"""People for the case desk's tests, made without the people API: users and teams written straight
into alerting's tables, and a signed-in session stored as the magic-link sign-in would store it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from libs.common import topics
from libs.common.events import Event, SessionStarted
from libs.common.service import Runtime
from libs.common.sessions import COOKIE, new_session, store_session
from services.alerting.models import SESSIONS, Team, TeamMember, User


async def make_team(runtime: Runtime, tenant_id: str | uuid.UUID, name: str | None = None) -> uuid.UUID:
    team_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with runtime.database.uow() as uow:
        uow.session.add(
            Team(
                id=team_id,
                tenant_id=uuid.UUID(str(tenant_id)),
                name=name or f"Team {team_id.hex[:6]}",
                created_at=now,
                updated_at=now,
            )
        )
        await uow.commit()
    return team_id


async def make_user(
    runtime: Runtime,
    tenant_id: str | uuid.UUID,
    *,
    name: str | None = None,
    role: str = "agent",
    teams: Sequence[uuid.UUID] = (),
    active: bool = True,
) -> uuid.UUID:
    user_id = uuid.uuid4()
    tenant = uuid.UUID(str(tenant_id))
    now = datetime.now(UTC)
    async with runtime.database.uow() as uow:
        uow.session.add(
            User(
                id=user_id,
                tenant_id=tenant,
                email=f"user-{user_id.hex[:10]}@desk.example",
                name=name or f"User {user_id.hex[:6]}",
                role=role,
                active=active,
                created_at=now,
                updated_at=now,
            )
        )
        await uow.session.flush()
        for team_id in teams:
            uow.session.add(TeamMember(team_id=team_id, user_id=user_id, tenant_id=tenant, joined_at=now))
        await uow.commit()
    return user_id


async def sign_in_cookie(
    runtime: Runtime,
    tenant_id: str | uuid.UUID,
    user_id: uuid.UUID,
    *,
    role: str = "agent",
    name: str = "Test Person",
) -> dict[str, str]:
    """A signed-in session for the user, as cookies for a client: ``{"nps_session": token}``."""
    session = new_session()
    now = datetime.now(UTC)
    started = SessionStarted.model_validate(
        {
            "session_id": session.session_id,
            "tenant_id": uuid.UUID(str(tenant_id)),
            "user_id": user_id,
            "role": role,
            "name": name,
            "token_hash": session.token_hash,
            "started_at": now,
            "expires_at": now + timedelta(hours=8),
        }
    )
    async with runtime.database.uow() as uow:
        await store_session(uow.session, SESSIONS, started)
        await uow.commit()
    return {COOKIE: session.token}


async def publish_all(bootstrap: str, events: Sequence[Event[Any]]) -> None:
    """Publish many answers with one producer, each keyed by its customer as the survey keys them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            subject = event.envelope.subject or ""
            await producer.send(topics.SURVEY_EVENTS, event.envelope.to_json(), key=subject.encode())
        await producer.flush()
    finally:
        await producer.stop()
