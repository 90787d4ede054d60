"""The people of the case desk over REST, for machines and admin scripts (API key): users, teams
and who is in which team. People themselves sign in at ``/signin`` (:mod:`.signin`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs.common.db import UnitOfWork
from libs.common.deps import Tenant, unit_of_work
from libs.common.events import Email
from libs.common.http import error_responses
from libs.common.outbound import UnsafeUrl, check_webhook_url, redact
from services.alerting.domain.people import EMAIL_MAX_LENGTH, Role
from services.alerting.handlers import people
from services.alerting.models import Team, User
from services.alerting.repository import AlertingRepository

router = APIRouter(tags=["people"])

UoW = Annotated[UnitOfWork[AlertingRepository], Depends(unit_of_work)]
RoleName = Literal["agent", "team_lead", "cx_manager", "admin"]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TeamName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Limit = Annotated[int, Query(ge=1, le=200, description="how many at most in this page")]
Cursor = Annotated[
    uuid.UUID | None, Query(description="the `next_cursor` of the previous page; none for the first")
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[Email, Field(max_length=EMAIL_MAX_LENGTH)] = Field(
        description="where the sign-in links go; stored lower-cased, one user per address and tenant"
    )
    name: PersonName = Field(description="how the desk names the person, e.g. on a case's timeline")
    role: RoleName = Field(
        default="agent",
        description="`agent` (their own and their team's cases), `team_lead`, `cx_manager` (all "
        "cases) or `admin` (all cases, and manages people)",
    )


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PersonName | None = Field(default=None, description="a new name")
    role: RoleName | None = Field(default=None, description="a new role; ends the user's sessions")
    active: bool | None = Field(
        default=None, description="`false` deactivates: no more sign-in, and every session ends at once"
    )


class UserView(BaseModel):
    id: uuid.UUID
    email: str = Field(description="the address, lower-cased")
    name: str
    role: RoleName
    active: bool = Field(description="whether the user may sign in")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls.model_validate(user, from_attributes=True)


class UserList(BaseModel):
    users: list[UserView]
    next_cursor: uuid.UUID | None = Field(description="pass as `cursor` for the next page; null at the end")


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: TeamName = Field(description="unique within the tenant, e.g. `Returns`")
    lead_user_id: uuid.UUID | None = Field(default=None, description="the team lead, a user of the tenant")


class TeamChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: TeamName | None = Field(default=None, description="a new name, unique within the tenant")
    lead_user_id: uuid.UUID | None = Field(
        default=None, description="a new team lead; `null` removes the lead, absent leaves it"
    )


class TeamView(BaseModel):
    id: uuid.UUID
    name: str
    lead_user_id: uuid.UUID | None
    members: list[uuid.UUID] = Field(description="the members' user ids, in the order they joined")
    slack_webhook: str | None = Field(description="the Slack incoming webhook, its secret path hidden")
    teams_webhook: str | None = Field(description="the Microsoft Teams webhook, its secret path hidden")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, team: Team, members: Sequence[uuid.UUID]) -> TeamView:
        return cls(
            id=team.id,
            name=team.name,
            lead_user_id=team.lead_user_id,
            members=list(members),
            slack_webhook=redact(team.slack_webhook_url) if team.slack_webhook_url else None,
            teams_webhook=redact(team.teams_webhook_url) if team.teams_webhook_url else None,
            created_at=team.created_at,
            updated_at=team.updated_at,
        )


class TeamList(BaseModel):
    teams: list[TeamView]
    next_cursor: uuid.UUID | None = Field(description="pass as `cursor` for the next page; null at the end")


def _not_found(error: Exception) -> HTTPException:
    return HTTPException(404, str(error))


@router.get("/v1/users")
async def list_users(tenant: Tenant, uow: UoW, limit: Limit = 50, cursor: Cursor = None) -> UserList:
    """The tenant's users, a page at a time (in a stable order; follow `next_cursor`)."""
    users = await uow.repository.list_users(tenant.tenant_id, after=cursor, limit=limit)
    return UserList(
        users=[UserView.of(user) for user in users],
        next_cursor=users[-1].id if len(users) == limit else None,
    )


@router.post("/v1/users", status_code=201, responses=error_responses(409))
async def create_user(tenant: Tenant, uow: UoW, body: UserCreate) -> UserView:
    """Add a person who may sign in to the case desk and the report. An address the tenant has a
    user with already answers 409 naming it."""
    try:
        user = await people.create_user(
            uow,
            tenant_id=tenant.tenant_id,
            email=body.email,
            name=body.name,
            role=Role(body.role),
            now=datetime.now(UTC),
        )
    except people.UserExists as error:
        raise HTTPException(409, str(error)) from None
    view = UserView.of(user)
    await uow.commit()
    return view


@router.get("/v1/users/{user_id}", responses=error_responses(404))
async def get_user(tenant: Tenant, uow: UoW, user_id: uuid.UUID) -> UserView:
    """One user of the tenant."""
    user = await uow.repository.get_user(tenant.tenant_id, user_id)
    if user is None:
        raise HTTPException(404, f"no user {user_id}")
    return UserView.of(user)


@router.patch("/v1/users/{user_id}", responses=error_responses(404))
async def update_user(tenant: Tenant, uow: UoW, user_id: uuid.UUID, body: UserChange) -> UserView:
    """Change a user's name, role or `active`; only the fields given. Deactivating a user, or
    changing their role, ends their sessions at once, in the desk and the report alike."""
    try:
        user = await people.update_user(
            uow,
            tenant_id=tenant.tenant_id,
            user_id=user_id,
            now=datetime.now(UTC),
            name=body.name,
            role=Role(body.role) if body.role is not None else None,
            active=body.active,
        )
    except people.UserNotFound as error:
        raise _not_found(error) from None
    view = UserView.of(user)
    await uow.commit()
    return view


async def _team_view(uow: UnitOfWork[AlertingRepository], team: Team) -> TeamView:
    members = await uow.repository.team_members([team.id])
    return TeamView.of(team, members[team.id])


@router.get("/v1/teams")
async def list_teams(tenant: Tenant, uow: UoW, limit: Limit = 50, cursor: Cursor = None) -> TeamList:
    """The tenant's teams with their members, a page at a time (follow `next_cursor`)."""
    teams = await uow.repository.list_teams(tenant.tenant_id, after=cursor, limit=limit)
    members = await uow.repository.team_members([team.id for team in teams])
    return TeamList(
        teams=[TeamView.of(team, members[team.id]) for team in teams],
        next_cursor=teams[-1].id if len(teams) == limit else None,
    )


@router.post("/v1/teams", status_code=201, responses=error_responses(409))
async def create_team(tenant: Tenant, uow: UoW, body: TeamCreate) -> TeamView:
    """Add a team. A name the tenant has a team of already answers 409 naming it; a lead who is
    not a user of the tenant, 422."""
    try:
        team = await people.create_team(
            uow,
            tenant_id=tenant.tenant_id,
            name=body.name,
            lead_user_id=body.lead_user_id,
            now=datetime.now(UTC),
        )
    except people.TeamExists as error:
        raise HTTPException(409, str(error)) from None
    except people.UnknownLead as error:
        raise HTTPException(422, str(error)) from None
    view = TeamView.of(team, [])
    await uow.commit()
    return view


@router.get("/v1/teams/{team_id}", responses=error_responses(404))
async def get_team(tenant: Tenant, uow: UoW, team_id: uuid.UUID) -> TeamView:
    """One team of the tenant, with its members."""
    team = await uow.repository.get_team(tenant.tenant_id, team_id)
    if team is None:
        raise HTTPException(404, f"no team {team_id}")
    return await _team_view(uow, team)


@router.patch("/v1/teams/{team_id}", responses=error_responses(404, 409))
async def update_team(tenant: Tenant, uow: UoW, team_id: uuid.UUID, body: TeamChange) -> TeamView:
    """Rename a team or set its lead (`null` removes the lead); only the fields given."""
    change = people.TeamChange(
        name=body.name, set_lead="lead_user_id" in body.model_fields_set, lead_user_id=body.lead_user_id
    )
    try:
        team = await people.update_team(
            uow, tenant_id=tenant.tenant_id, team_id=team_id, change=change, now=datetime.now(UTC)
        )
    except people.TeamNotFound as error:
        raise _not_found(error) from None
    except people.TeamExists as error:
        raise HTTPException(409, str(error)) from None
    except people.UnknownLead as error:
        raise HTTPException(422, str(error)) from None
    view = await _team_view(uow, team)
    await uow.commit()
    return view


class TeamWebhooks(BaseModel):
    """The incoming webhooks a team's notifications also go to; `null` removes one."""

    model_config = ConfigDict(extra="forbid")
    slack: str | None = Field(
        default=None,
        max_length=2000,
        description="a Slack incoming webhook, `https://hooks.slack.com/services/...`",
    )
    teams: str | None = Field(
        default=None, max_length=2000, description="a Microsoft Teams incoming webhook or Workflows URL"
    )


@router.put("/v1/teams/{team_id}/webhooks", responses=error_responses(404, 422))
async def set_team_webhooks(tenant: Tenant, uow: UoW, team_id: uuid.UUID, body: TeamWebhooks) -> TeamView:
    """Send the team's case notifications (new case, escalations) to Slack and/or Teams as well as by
    email. Only public `https://` addresses are taken: a private, loopback or link-local address, an
    IP written in an unusual form or a name like `localhost` answers 422 naming the problem (and a
    name that resolves to a private address is refused again when sending). The URLs are secrets:
    they are never shown back in full."""
    try:
        slack = check_webhook_url(body.slack) if body.slack else None
        teams = check_webhook_url(body.teams) if body.teams else None
    except UnsafeUrl as error:
        raise HTTPException(422, f"webhook refused: {error}") from None
    team = await uow.repository.get_team(tenant.tenant_id, team_id, for_update=True)
    if team is None:
        raise HTTPException(404, f"no team {team_id}")
    team.slack_webhook_url, team.teams_webhook_url = slack, teams
    team.updated_at = datetime.now(UTC)
    view = await _team_view(uow, team)
    await uow.commit()
    return view


@router.delete("/v1/teams/{team_id}", status_code=204, responses=error_responses(404))
async def delete_team(tenant: Tenant, uow: UoW, team_id: uuid.UUID) -> Response:
    """Delete a team; its members stay users. Cases placed with it keep the team's id."""
    try:
        await people.delete_team(uow, tenant_id=tenant.tenant_id, team_id=team_id)
    except people.TeamNotFound as error:
        raise _not_found(error) from None
    await uow.commit()
    return Response(status_code=204)


@router.put("/v1/teams/{team_id}/members/{user_id}", responses=error_responses(404))
async def add_member(tenant: Tenant, uow: UoW, team_id: uuid.UUID, user_id: uuid.UUID) -> TeamView:
    """Make a user a member of a team (again is fine: nothing changes). The team as it is now."""
    try:
        await people.add_member(
            uow, tenant_id=tenant.tenant_id, team_id=team_id, user_id=user_id, now=datetime.now(UTC)
        )
    except (people.TeamNotFound, people.UserNotFound) as error:
        raise _not_found(error) from None
    team = await uow.repository.get_team(tenant.tenant_id, team_id)
    assert team is not None
    view = await _team_view(uow, team)
    await uow.commit()
    return view


@router.delete("/v1/teams/{team_id}/members/{user_id}", status_code=204, responses=error_responses(404))
async def remove_member(tenant: Tenant, uow: UoW, team_id: uuid.UUID, user_id: uuid.UUID) -> Response:
    """Take a user out of a team; 404 when they are not in it."""
    try:
        await people.remove_member(uow, tenant_id=tenant.tenant_id, team_id=team_id, user_id=user_id)
    except people.TeamNotFound as error:
        raise _not_found(error) from None
    except people.UserNotFound:
        raise HTTPException(404, f"user {user_id} is not a member of team {team_id}") from None
    await uow.commit()
    return Response(status_code=204)
