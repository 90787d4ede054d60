"""What the people's pages take: who is signed in, and a checked CSRF token on every form.

Machines use API keys (:mod:`libs.common.deps`); people sign in at the case desk with a magic link
and carry a session cookie (:mod:`libs.common.sessions`). Routes name the aliases below:

- ``SignedInPage``: a page; without a valid session the browser is sent to the sign-in page, which
  brings it back afterwards;
- ``SignedIn``: a JSON route the pages call; without a session it answers 401;
- ``CheckedForm``: a form POST; its ``csrf_token`` field must be the session's, or 403.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.datastructures import FormData

from libs.common.deps import _api_key_header, _bearer, edge_of, require_tenant
from libs.common.sessions import COOKIE, CSRF_FIELD, Person, csrf_ok, person_of
from libs.common.tenancy import TenantContext


class SignInRequired(Exception):
    """Raised by a page dependency: the edge answers with a redirect to the sign-in page."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


async def current_person(request: Request) -> Person | None:
    """The person whose session cookie came with the request, if any."""
    edge = edge_of(request)
    if edge.sessions is None:
        raise RuntimeError("this service keeps no sessions (ServiceDefinition.sessions)")
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    async with edge.database.uow() as uow:
        return await person_of(uow.session, edge.sessions, cookie)


def sign_in_location(request: Request) -> str:
    """The desk's sign-in page, asked to come back to this page afterwards."""
    desk = edge_of(request).settings.desk_public_url
    return f"{desk}/signin?next={quote(str(request.url), safe='')}"


def safe_next(settings_desk: str, settings_report: str, wanted: str | None) -> str:
    """Where to go after signing in: the page asked for if it is on the desk or the report, else the
    desk's home. Never anywhere else: a sign-in link must not become an open redirect."""
    if wanted:
        for base in (settings_desk, settings_report):
            if wanted == base or wanted.startswith(base + "/"):
                return wanted
        if wanted.startswith("/") and not wanted.startswith("//") and "\\" not in wanted:
            return settings_desk + wanted
    return settings_desk + "/desk"


async def require_person_page(request: Request) -> Person:
    person = await current_person(request)
    if person is None:
        raise SignInRequired(sign_in_location(request))
    return person


async def require_person(request: Request) -> Person:
    person = await current_person(request)
    if person is None:
        raise HTTPException(401, "not signed in: sign in at the case desk first")
    return person


async def checked_form(request: Request, person: Annotated[Person, Depends(require_person_page)]) -> FormData:
    """The form of a POST from a page, once its CSRF token is known to be this session's."""
    form = await request.form()
    presented = form.get(CSRF_FIELD)
    if not csrf_ok(person.token, presented if isinstance(presented, str) else None):
        raise HTTPException(403, "the form's CSRF token is missing or not this session's: reload the page")
    return form


SignedInPage = Annotated[Person, Depends(require_person_page)]
SignedIn = Annotated[Person, Depends(require_person)]
CheckedForm = Annotated[FormData, Depends(checked_form)]


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(exc.location, status_code=303, headers={"Cache-Control": "no-store"})


def install(app: FastAPI) -> None:
    """A page whose visitor is not signed in sends them to sign in (and back)."""
    app.add_exception_handler(SignInRequired, _to_sign_in)


async def require_tenant_or_person(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> TenantContext:
    """A route machines call with an API key and pages call with the person's session cookie: the
    key when one is sent (as :func:`libs.common.deps.require_tenant`), else the signed-in person's
    tenant (``key_id`` ``session:<id>``). Neither answers 401 as a missing key does."""
    if api_key is None and bearer is None:
        person = await current_person(request)
        if person is not None:
            return TenantContext(tenant_id=person.tenant_id, key_id=f"session:{person.session_id}")
    return await require_tenant(request, bearer, api_key)


#: The tenant of an API key, or of the person signed in (reporting's JSON that the report page reads).
TenantOrPerson = Annotated[TenantContext, Depends(require_tenant_or_person)]
