"""The case desk's pages: the lists a CX team works from and the page of one case, with its
actions as plain HTML forms (POST, CSRF-checked, then 303 back: a reload never repeats an action).

Server-rendered, and usable without JavaScript; the one script only keeps the SLA countdowns
running. Every asset comes from ``/desk/assets/``; the pages' CSP allows nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.datastructures import FormData

from libs.common.db import UnitOfWork
from libs.common.deps import Settings, unit_of_work
from libs.common.sessions import Person
from libs.common.web import CheckedForm, SignedInPage
from services.alerting import handlers
from services.alerting.api import desk_views as views
from services.alerting.domain import desk
from services.alerting.domain.cases import CaseStatus, InvalidTransition
from services.alerting.domain.people import Role
from services.alerting.handlers.common import Actor
from services.alerting.repository import AlertingRepository

router = APIRouter(include_in_schema=False)

DeskUoW = Annotated[UnitOfWork[AlertingRepository], Depends(unit_of_work)]
PAGE_SIZE = 50
_ASSETS = Path(__file__).parent.parent / "assets"
_ASSET_TYPES = {"desk.css": "text/css; charset=utf-8", "desk.js": "text/javascript; charset=utf-8"}
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    # Comments, names and notes are customers' and colleagues' text: everything is escaped.
    autoescape=True,
    undefined=StrictUndefined,
)
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
TABS = {"mine": "My cases", "team": "My team's", "all": "All"}


def manages_people(person: Person) -> bool:
    """Whether the header links to the People page: only for those the roles let manage people."""
    return Role(person.role).manages_people


_TEMPLATES.globals["manages_people"] = manages_people


def render(template: str, status: int = 200, **context: object) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def not_found(person: Person) -> HTMLResponse:
    return render("desk_not_found.html", 404, person=person, title="Case not found")


@router.get("/report", include_in_schema=False)
async def to_the_report(settings: Settings) -> RedirectResponse:
    """The report, on the reporting service: the same sign-in opens it."""
    return RedirectResponse(f"{settings.report_public_url}/", status_code=303)


@router.get("/desk/assets/{name}")
async def desk_asset(name: str) -> Response:
    if name not in _ASSET_TYPES:
        return Response("no such asset", status_code=404, media_type="text/plain")
    return FileResponse(
        _ASSETS / name, media_type=_ASSET_TYPES[name], headers={"Cache-Control": "public, max-age=300"}
    )


async def _scope(uow: UnitOfWork[AlertingRepository], person: Person, tab: str) -> desk.Scope:
    if tab == "all" and person.sees_all:
        return desk.Scope()
    if tab == "team":
        return desk.Scope(team_ids=await uow.repository.team_ids_of(person.tenant_id, person.user_id))
    return desk.Scope(user_id=person.user_id)


@router.get("/desk", response_class=HTMLResponse)
async def desk_list(
    person: SignedInPage,
    uow: DeskUoW,
    tab: Annotated[str, Query()] = "mine",
    status: Annotated[str, Query()] = "",
    touchpoint: Annotated[str, Query()] = "",
    owner: Annotated[str, Query()] = "",
    band: Annotated[str, Query()] = "",
    cursor: Annotated[str, Query()] = "",
) -> HTMLResponse:
    """A list of cases, soonest due first: the person's own, their teams', or (not for agents) all."""
    tab = tab if tab in TABS and (tab != "all" or person.sees_all) else "mine"
    chosen = views.ListChoice.parse(
        status=status, touchpoint=touchpoint, owner=owner, band=band, cursor=cursor
    )
    page = await uow.repository.desk_cases(
        person.tenant_id,
        where=chosen.where,
        scope=await _scope(uow, person, tab),
        after=chosen.after,
        limit=PAGE_SIZE,
    )
    users, _ = await uow.repository.desk_choices(person.tenant_id)
    now = datetime.now(UTC)
    query = {"tab": tab, **chosen.query}
    last = page.rows[-1].case if page.rows and page.more else None
    next_cursor = desk.Cursor(last.due_at, last.id).encode() if last is not None else None
    return render(
        "desk_list.html",
        person=person,
        title=TABS[tab],
        tabs=[(key, label) for key, label in TABS.items() if key != "all" or person.sees_all],
        tab=tab,
        rows=[views.row_view(row, now) for row in page.rows],
        chosen=chosen,
        users=users,
        statuses=[status.value for status in CaseStatus],
        problem=chosen.problem,
        next_url=f"/desk?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
        first_url=f"/desk?{urlencode(query)}" if chosen.after is not None else None,
    )


async def _case_page(
    uow: UnitOfWork[AlertingRepository],
    person: Person,
    case_id: str,
    *,
    problem: str | None = None,
    form: Mapping[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    try:
        wanted = uuid.UUID(case_id)
    except ValueError:
        return not_found(person)
    detail = await uow.repository.case_detail(person.tenant_id, wanted)
    teams = await uow.repository.team_ids_of(person.tenant_id, person.user_id)
    if detail is None or not desk.visible(person, detail.row.case, teams):
        return not_found(person)
    users, all_teams = await uow.repository.desk_choices(person.tenant_id)
    open_counts = await uow.repository.open_case_counts(person.tenant_id)
    causes = (await uow.repository.desk_policy(person.tenant_id)).root_causes
    return render(
        "desk_case.html",
        status,
        person=person,
        title=f"Case of {detail.row.case.customer_name or detail.row.case.customer_id}",
        **views.case_context(detail, datetime.now(UTC)),
        users=users,
        open_counts={str(user_id): count for user_id, count in open_counts.items()},
        teams=all_teams,
        root_causes=causes,
        channels=views.CHANNELS,
        outcomes=views.OUTCOMES,
        problem=problem,
        form=dict(form or {}),
    )


@router.get("/desk/cases/{case_id}", response_class=HTMLResponse)
async def desk_case(person: SignedInPage, uow: DeskUoW, case_id: str) -> HTMLResponse:
    """One case: the answer and its why, the customer's history, the timeline, and the actions."""
    return await _case_page(uow, person, case_id)


Action = Callable[[uuid.UUID, Actor, FormData, datetime], Awaitable[object]]


async def _act(
    uow: UnitOfWork[AlertingRepository], person: Person, case_id: str, form: FormData, action: Action
) -> Response:
    """Run a form's action; on success 303 back to the case (PRG), else the page with the problem."""
    try:
        wanted = uuid.UUID(case_id)
    except ValueError:
        return not_found(person)
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        await action(wanted, Actor.of(person), form, datetime.now(UTC))
    except handlers.CaseNotFound:
        return not_found(person)
    except (handlers.NotInTenant, views.BadForm) as error:
        return await _case_page(uow, person, case_id, problem=str(error), form=fields, status=422)
    except desk.InvalidInput as error:
        problem = f"{views.FIELD_LABELS.get(error.field, error.field)} {error.message}"
        return await _case_page(uow, person, case_id, problem=problem, form=fields, status=422)
    except InvalidTransition as error:
        return await _case_page(
            uow, person, case_id, problem=str(error).capitalize(), form=fields, status=400
        )
    await uow.commit()
    return RedirectResponse(f"/desk/cases/{wanted}", status_code=303)


@router.post("/desk/cases/{case_id}/assign", response_class=HTMLResponse)
async def desk_assign(person: SignedInPage, form: CheckedForm, uow: DeskUoW, case_id: str) -> Response:
    async def action(wanted: uuid.UUID, actor: Actor, form: FormData, now: datetime) -> object:
        return await handlers.assign(
            uow,
            tenant_id=person.tenant_id,
            case_id=wanted,
            actor=actor,
            user_id=views.optional_id(form, "user_id"),
            team_id=views.optional_id(form, "team_id"),
            now=now,
        )

    return await _act(uow, person, case_id, form, action)


@router.post("/desk/cases/{case_id}/notes", response_class=HTMLResponse)
async def desk_note(person: SignedInPage, form: CheckedForm, uow: DeskUoW, case_id: str) -> Response:
    async def action(wanted: uuid.UUID, actor: Actor, form: FormData, now: datetime) -> object:
        return await handlers.add_note(
            uow,
            tenant_id=person.tenant_id,
            case_id=wanted,
            actor=actor,
            text=views.text(form, "text"),
            now=now,
        )

    return await _act(uow, person, case_id, form, action)


@router.post("/desk/cases/{case_id}/contacts", response_class=HTMLResponse)
async def desk_contact(person: SignedInPage, form: CheckedForm, uow: DeskUoW, case_id: str) -> Response:
    async def action(wanted: uuid.UUID, actor: Actor, form: FormData, now: datetime) -> object:
        return await handlers.log_contact(
            uow,
            tenant_id=person.tenant_id,
            case_id=wanted,
            actor=actor,
            channel=views.choice(form, "channel", desk.Channel),
            outcome=views.choice(form, "outcome", desk.Outcome),
            note=views.text(form, "note"),
            now=now,
        )

    return await _act(uow, person, case_id, form, action)


@router.post("/desk/cases/{case_id}/resolve", response_class=HTMLResponse)
async def desk_resolve(person: SignedInPage, form: CheckedForm, uow: DeskUoW, case_id: str) -> Response:
    async def action(wanted: uuid.UUID, actor: Actor, form: FormData, now: datetime) -> object:
        return await handlers.resolve(
            uow,
            tenant_id=person.tenant_id,
            case_id=wanted,
            actor=actor,
            root_cause=views.text(form, "root_cause") or None,
            resolution=views.text(form, "resolution"),
            now=now,
        )

    return await _act(uow, person, case_id, form, action)


@router.post("/desk/cases/{case_id}/reopen", response_class=HTMLResponse)
async def desk_reopen(person: SignedInPage, form: CheckedForm, uow: DeskUoW, case_id: str) -> Response:
    async def action(wanted: uuid.UUID, actor: Actor, form: FormData, now: datetime) -> object:
        return await handlers.reopen(
            uow,
            tenant_id=person.tenant_id,
            case_id=wanted,
            actor=actor,
            reason=views.text(form, "reason"),
            now=now,
        )

    return await _act(uow, person, case_id, form, action)
