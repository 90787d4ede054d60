"""Signing in to the case desk, for people: a magic link by email, then a session cookie that
opens the desk and the report alike.

- ``GET /signin`` asks for the address; ``POST /signin`` emails a one-time link (one per tenant
  the address works for) and always answers the same page, so nobody learns which addresses are
  known. There is no session yet, so the form is protected by a double-submit cookie.
- ``GET /signin/{token}`` only shows a button, because mail scanners fetch links;
  ``POST /signin/{token}`` uses the link, sets the session cookie and goes on.
- ``POST /signout`` ends the session everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from libs.common.db import UnitOfWork
from libs.common.deps import settings_of, unit_of_work
from libs.common.mail import DeliveryError, SmtpTarget, send_email
from libs.common.sessions import COOKIE
from libs.common.web import CheckedForm, SignedInPage, safe_next
from services.alerting.config import AlertingSettings
from services.alerting.domain.people import looks_like_email, normalise_email
from services.alerting.handlers import people
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

Config = Annotated[AlertingSettings, Depends(settings_of(AlertingSettings))]
UoW = Annotated[UnitOfWork[AlertingRepository], Depends(unit_of_work)]

#: The double-submit cookie of the sign-in forms, and the hidden field that must equal it.
SIGNIN_COOKIE = "nps_signin"
SIGNIN_FIELD = "signin_token"
_SIGNIN_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NEXT_MAX = 500
SMTP_TIMEOUT_SECONDS = 15.0

_TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
_TEMPLATES = Environment(loader=FileSystemLoader(_TEMPLATE_DIR), autoescape=True, undefined=StrictUndefined)
_CSS = (_TEMPLATE_DIR / "signin.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()


def _headers(settings: AlertingSettings) -> dict[str, str]:
    # Signing in leads on to the desk's public address or to the report (another origin): a
    # form's redirect must be allowed to go there too.
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; "
            f"form-action 'self' {settings.desk_public_url} {settings.report_public_url}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _page(settings: AlertingSettings, template: str, status: int = 200, **values: object) -> HTMLResponse:
    body = _TEMPLATES.get_template(template).render(css=_CSS, **values)
    return HTMLResponse(body, status_code=status, headers=_headers(settings))


def _clean_next(raw: object) -> str:
    """The ``next`` a form or query carried, if it can be one: text, short, no control characters."""
    if not isinstance(raw, str) or len(raw) > _NEXT_MAX or any(ord(c) < 32 for c in raw):
        return ""
    return raw


def _again_url(next_url: str) -> str:
    return "/signin" + (f"?next={quote(next_url, safe='')}" if next_url else "")


def _signin_value(request: Request) -> str:
    """This browser's double-submit value: the one it has, or a new one."""
    present = request.cookies.get(SIGNIN_COOKIE, "")
    return present if _SIGNIN_VALUE.match(present) else secrets.token_urlsafe(32)


def _with_signin_cookie(response: Response, settings: AlertingSettings, value: str) -> Response:
    response.set_cookie(
        SIGNIN_COOKIE,
        value,
        max_age=3600,
        path="/signin",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def _double_submit_ok(request: Request, presented: object) -> bool:
    cookie = request.cookies.get(SIGNIN_COOKIE)
    return (
        isinstance(presented, str)
        and cookie is not None
        and _SIGNIN_VALUE.match(cookie) is not None
        and hmac.compare_digest(cookie.encode(), presented.encode())
    )


def _forbidden(settings: AlertingSettings, next_url: str) -> HTMLResponse:
    return _page(
        settings,
        "signin_problem.html",
        403,
        heading="Please try again",
        message="This form could not be checked (it is too old, or cookies are blocked). "
        "Reload the sign-in page and send it again.",
        again_url=_again_url(next_url),
        again_label="Back to the sign-in page",
    )


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(request: Request, settings: Config, next: str | None = None) -> Response:
    value = _signin_value(request)
    page = _page(
        settings, "signin.html", signin_token=value, next_url=_clean_next(next), email="", problem=""
    )
    return _with_signin_cookie(page, settings, value)


@router.post("/signin", response_class=HTMLResponse)
async def ask_for_link(request: Request, settings: Config, uow: UoW) -> Response:
    form = await request.form()
    next_url = _clean_next(form.get("next"))
    if not _double_submit_ok(request, form.get(SIGNIN_FIELD)):
        return _forbidden(settings, next_url)
    raw_email = form.get("email")
    address = normalise_email(raw_email) if isinstance(raw_email, str) else ""
    if not looks_like_email(address):
        value = _signin_value(request)
        page = _page(
            settings,
            "signin.html",
            400,
            signin_token=value,
            next_url=next_url,
            email="",
            problem="Enter your email address, such as name@example.com.",
        )
        return _with_signin_cookie(page, settings, value)
    wanted = safe_next(settings.desk_public_url, settings.report_public_url, next_url) if next_url else None
    links = await people.request_sign_in(uow, email=address, next_url=wanted, now=datetime.now(UTC))
    await uow.commit()
    if links:
        try:
            await send_email(
                SmtpTarget.from_url(settings.smtp_url),
                _sign_in_email(settings, address, links, wanted),
                timeout_seconds=SMTP_TIMEOUT_SECONDS,
            )
        except (DeliveryError, OSError) as error:
            log.warning("signin.mail_failed", extra={"error_type": type(error).__name__})
            return _page(
                settings,
                "signin_problem.html",
                503,
                heading="The email could not be sent",
                message="Our mail server did not take the sign-in email. Please try again in a minute.",
                again_url=_again_url(next_url),
                again_label="Try again",
            )
        log.info("signin.link_sent", extra={"links": len(links)})
    return _page(settings, "signin_sent.html", again_url=_again_url(next_url))


def _link(settings: AlertingSettings, token: str, next_url: str | None) -> str:
    query = f"?next={quote(next_url, safe='')}" if next_url else ""
    return f"{settings.desk_public_url}/signin/{token}{query}"


def _sign_in_email(
    settings: AlertingSettings, address: str, links: list[people.SignInLink], next_url: str | None
) -> EmailMessage:
    """One email for the address, with a link per tenant it works for, each naming the tenant."""
    urls = [(link.tenant_name, _link(settings, link.token, next_url)) for link in links]
    greeting = f"Hello {links[0].user_name},"
    ending = "Each link works once, within 15 minutes. If you did not ask to sign in, ignore this email."
    if len(urls) == 1:
        text = f"{greeting}\n\nSign in to the NPS case desk of {urls[0][0]}:\n{urls[0][1]}\n\n{ending}\n"
    else:
        listed = "\n".join(f"- {name}: {url}" for name, url in urls)
        text = (
            f"{greeting}\n\nYour address can sign in for several companies; pick one:\n{listed}\n\n{ending}\n"
        )
    html = _TEMPLATES.get_template("signin_email.html").render(greeting=greeting, urls=urls, ending=ending)
    message = EmailMessage()
    message["Subject"] = "Sign in to the NPS case desk"
    message["From"] = settings.mail_from
    message["To"] = address
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


@router.get("/signin/{token}", response_class=HTMLResponse)
async def continue_page(request: Request, settings: Config, token: str, next: str | None = None) -> Response:
    # Only a button: a mail scanner that fetches the link must not use it up.
    next_url = _clean_next(next)
    value = _signin_value(request)
    action = f"/signin/{quote(token, safe='')}" + (f"?next={quote(next_url, safe='')}" if next_url else "")
    page = _page(settings, "signin_continue.html", action=action, signin_token=value)
    return _with_signin_cookie(page, settings, value)


@router.post("/signin/{token}", response_class=HTMLResponse)
async def use_link(
    request: Request, settings: Config, uow: UoW, token: str, next: str | None = None
) -> Response:
    next_url = _clean_next(next)
    form = await request.form()
    if not _double_submit_ok(request, form.get(SIGNIN_FIELD)):
        return _forbidden(settings, next_url)
    signed_in = await people.complete_sign_in(
        uow, token=token, now=datetime.now(UTC), lifetime=settings.session_lifetime
    )
    if signed_in is None:
        return _page(
            settings,
            "signin_problem.html",
            400,
            heading="This link cannot be used",
            message="This sign-in link has expired or was already used.",
            again_url=_again_url(next_url),
            again_label="Ask for a new sign-in link",
        )
    await uow.commit()
    target = safe_next(settings.desk_public_url, settings.report_public_url, signed_in.next_url or next_url)
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE,
        signed_in.cookie,
        max_age=int(settings.session_lifetime.total_seconds()),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/signin", secure=settings.secure_cookies, httponly=True)
    return response


@router.post("/signout", response_class=HTMLResponse)
async def sign_out(person: SignedInPage, form: CheckedForm, settings: Config, uow: UoW) -> Response:
    await people.sign_out(uow, person, datetime.now(UTC))
    await uow.commit()
    response = RedirectResponse("/signin", status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path="/", secure=settings.secure_cookies, httponly=True, samesite="lax")
    return response
