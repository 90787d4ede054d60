"""The desk's People page: an admin adds people, changes their role, deactivates or reactivates
them, and makes teams, as the people API lets a machine do (and through the same handlers and
the same checks of what was typed). Plain HTML forms: POST, CSRF-checked, then 303 back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from libs.common.db import UnitOfWork
from libs.common.sessions import Person
from libs.common.web import CheckedForm, SignedInPage
from services.alerting.api.desk import DeskUoW, render
from services.alerting.api.desk_views import BadForm, text
from services.alerting.api.people import TeamCreate, UserCreate
from services.alerting.domain.people import Role
from services.alerting.handlers import people
from services.alerting.models import Team, User
from services.alerting.repository import AlertingRepository

router = APIRouter(include_in_schema=False)

M = TypeVar("M", bound=BaseModel)
Uow = UnitOfWork[AlertingRepository]
PAGE = "/desk/people"
ROLES = [
    (Role.AGENT.value, "Agent"),
    (Role.TEAM_LEAD.value, "Team lead"),
    (Role.CX_MANAGER.value, "CX manager"),
    (Role.ADMIN.value, "Admin"),
]
_ROLE_LABELS = dict(ROLES)
_LABELS = {"email": "Email", "name": "Name", "role": "Role", "lead_user_id": "Team lead", "user_id": "Member"}
#: Users and teams are read a page at a time, this many each.
_BATCH = 200


class Refused(Exception):
    """The page answers with a page saying no: ``status`` 403 or 404."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status, self.heading, self.message = status, heading, message


def _not_found() -> Refused:
    return Refused(404, "Not found", "There is no such user or team in your organisation.")


@dataclass(frozen=True, slots=True)
class UserRow:
    id: uuid.UUID
    name: str
    email: str
    role: str
    role_label: str
    active: bool


@dataclass(frozen=True, slots=True)
class TeamRow:
    id: uuid.UUID
    name: str
    lead: str | None
    members: list[tuple[uuid.UUID, str]]
    joinable: list[tuple[uuid.UUID, str]]


async def _all_users(uow: Uow, tenant_id: uuid.UUID) -> list[User]:
    users: list[User] = []
    while True:
        batch = await uow.repository.list_users(
            tenant_id, after=users[-1].id if users else None, limit=_BATCH
        )
        users.extend(batch)
        if len(batch) < _BATCH:
            return sorted(users, key=lambda user: (user.name.casefold(), user.id))


async def _all_teams(uow: Uow, tenant_id: uuid.UUID) -> list[Team]:
    teams: list[Team] = []
    while True:
        batch = await uow.repository.list_teams(
            tenant_id, after=teams[-1].id if teams else None, limit=_BATCH
        )
        teams.extend(batch)
        if len(batch) < _BATCH:
            return sorted(teams, key=lambda team: (team.name.casefold(), team.id))


def _team_rows(
    teams: Sequence[Team], members: Mapping[uuid.UUID, list[uuid.UUID]], users: Sequence[User]
) -> list[TeamRow]:
    names = {user.id: user.name for user in users}
    rows = []
    for team in teams:
        in_team = set(members[team.id])
        rows.append(
            TeamRow(
                id=team.id,
                name=team.name,
                lead=names.get(team.lead_user_id) if team.lead_user_id is not None else None,
                members=[(user_id, names.get(user_id, "?")) for user_id in members[team.id]],
                joinable=[(user.id, user.name) for user in users if user.active and user.id not in in_team],
            )
        )
    return rows


def _refused_page(person: Person, refused: Refused) -> HTMLResponse:
    return render(
        "desk_people_refused.html",
        refused.status,
        person=person,
        title=refused.heading,
        heading=refused.heading,
        message=refused.message,
    )


def _check_may_manage(person: Person) -> None:
    if not Role(person.role).manages_people:
        raise Refused(403, "Not allowed", "You may not manage people: only admins add and change people.")


async def _people_page(
    uow: Uow, person: Person, *, problem: str | None = None, form: FormData | None = None, status: int = 200
) -> HTMLResponse:
    users = await _all_users(uow, person.tenant_id)
    teams = await _all_teams(uow, person.tenant_id)
    members = await uow.repository.team_members([team.id for team in teams])
    fields = {key: value for key, value in (form or {}).items() if isinstance(value, str)}
    return render(
        "desk_people.html",
        status,
        person=person,
        title="People",
        users=[
            UserRow(
                user.id, user.name, user.email, user.role, _ROLE_LABELS.get(user.role, user.role), user.active
            )
            for user in users
        ],
        teams=_team_rows(teams, members, users),
        leads=[(user.id, user.name) for user in users if user.active],
        roles=ROLES,
        problem=problem,
        form=fields,
    )


@router.get("/desk/people", response_class=HTMLResponse)
async def people_page(person: SignedInPage, uow: DeskUoW) -> HTMLResponse:
    """The organisation's users and teams, with the forms that change them (admins only)."""
    try:
        _check_may_manage(person)
    except Refused as refused:
        return _refused_page(person, refused)
    return await _people_page(uow, person)


def _message(error: ErrorDetails) -> str:
    kind, context = error["type"], error.get("ctx", {})
    if kind == "string_too_short":
        return "this is required"
    if kind == "string_too_long":
        return f"at most {context.get('max_length')} characters"
    if kind in {"literal_error", "uuid_parsing", "uuid_type"}:
        return "choose one from the list"
    return error["msg"].removeprefix("Value error, ")


def _checked(model: type[M], fields: Mapping[str, Any]) -> M:
    """The form's fields checked by the people API's own model, its refusals said in words."""
    for name, value in fields.items():
        if isinstance(value, str) and "\x00" in value:
            raise BadForm(f"{_LABELS[name]}: contains a NUL character (\\u0000), which text cannot hold")
    try:
        return model.model_validate(dict(fields))
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise BadForm(f"{_LABELS.get(field, field)}: {_message(first)}") from None


def _path_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _not_found() from None


def _form_id(form: FormData, name: str) -> uuid.UUID:
    try:
        return uuid.UUID((text(form, name) or "").strip())
    except ValueError:
        raise BadForm(f"{_LABELS[name]}: choose one from the list") from None


def _role(form: FormData) -> Role:
    try:
        return Role(text(form, "role") or "")
    except ValueError:
        raise BadForm("Role: choose one from the list") from None


Change = Callable[[datetime], Awaitable[object]]


async def _change(uow: Uow, person: Person, form: FormData, change: Change) -> Response:
    """Make one change; on success 303 back to the page (PRG), else the page saying what is wrong."""
    try:
        _check_may_manage(person)
        await change(datetime.now(UTC))
    except Refused as refused:
        return _refused_page(person, refused)
    except (people.UserNotFound, people.TeamNotFound):
        return _refused_page(person, _not_found())
    except (people.UserExists, people.TeamExists) as error:
        return await _people_page(uow, person, problem=_sentence(error), form=form, status=409)
    except people.UnknownLead:
        problem = "Team lead: choose one from the list"
        return await _people_page(uow, person, problem=problem, form=form, status=422)
    except BadForm as error:
        return await _people_page(uow, person, problem=str(error), form=form, status=422)
    await uow.commit()
    return RedirectResponse(PAGE, status_code=303)


def _sentence(error: Exception) -> str:
    words = str(error)
    return words[:1].upper() + words[1:] + "."


@router.post("/desk/people/users", response_class=HTMLResponse)
async def add_user(person: SignedInPage, form: CheckedForm, uow: DeskUoW) -> Response:
    async def change(now: datetime) -> object:
        fields = {
            "email": text(form, "email") or "",
            "name": text(form, "name") or "",
            "role": text(form, "role"),
        }
        body = _checked(UserCreate, {key: value for key, value in fields.items() if value is not None})
        return await people.create_user(
            uow, tenant_id=person.tenant_id, email=body.email, name=body.name, role=Role(body.role), now=now
        )

    return await _change(uow, person, form, change)


@router.post("/desk/people/users/{user_id}/role", response_class=HTMLResponse)
async def change_role(person: SignedInPage, form: CheckedForm, uow: DeskUoW, user_id: str) -> Response:
    async def change(now: datetime) -> object:
        wanted = _path_id(user_id)
        role = _role(form)
        return await people.update_user(uow, tenant_id=person.tenant_id, user_id=wanted, role=role, now=now)

    return await _change(uow, person, form, change)


async def _set_active(uow: Uow, person: Person, form: FormData, user_id: str, active: bool) -> Response:
    async def change(now: datetime) -> object:
        wanted = _path_id(user_id)
        return await people.update_user(
            uow, tenant_id=person.tenant_id, user_id=wanted, active=active, now=now
        )

    return await _change(uow, person, form, change)


@router.post("/desk/people/users/{user_id}/deactivate", response_class=HTMLResponse)
async def deactivate_user(person: SignedInPage, form: CheckedForm, uow: DeskUoW, user_id: str) -> Response:
    """No more sign-in, and the user's sessions end at once (the handler's rule)."""
    return await _set_active(uow, person, form, user_id, active=False)


@router.post("/desk/people/users/{user_id}/reactivate", response_class=HTMLResponse)
async def reactivate_user(person: SignedInPage, form: CheckedForm, uow: DeskUoW, user_id: str) -> Response:
    return await _set_active(uow, person, form, user_id, active=True)


@router.post("/desk/people/teams", response_class=HTMLResponse)
async def add_team(person: SignedInPage, form: CheckedForm, uow: DeskUoW) -> Response:
    async def change(now: datetime) -> object:
        lead = (text(form, "lead_user_id") or "").strip()
        fields = {"name": text(form, "name") or "", **({"lead_user_id": lead} if lead else {})}
        body = _checked(TeamCreate, fields)
        return await people.create_team(
            uow, tenant_id=person.tenant_id, name=body.name, lead_user_id=body.lead_user_id, now=now
        )

    return await _change(uow, person, form, change)


@router.post("/desk/people/teams/{team_id}/members", response_class=HTMLResponse)
async def add_member(person: SignedInPage, form: CheckedForm, uow: DeskUoW, team_id: str) -> Response:
    async def change(now: datetime) -> object:
        wanted = _path_id(team_id)
        member = _form_id(form, "user_id")
        return await people.add_member(
            uow, tenant_id=person.tenant_id, team_id=wanted, user_id=member, now=now
        )

    return await _change(uow, person, form, change)


@router.post("/desk/people/teams/{team_id}/members/{user_id}/remove", response_class=HTMLResponse)
async def remove_member(
    person: SignedInPage, form: CheckedForm, uow: DeskUoW, team_id: str, user_id: str
) -> Response:
    async def change(now: datetime) -> object:
        await people.remove_member(
            uow, tenant_id=person.tenant_id, team_id=_path_id(team_id), user_id=_path_id(user_id)
        )
        return None

    return await _change(uow, person, form, change)
