"""Signing in with a magic link: asked for by address, emailed, used once by a button (never by a
mere GET), and the session then opens the case desk and the report until it ends."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from libs.common.sessions import csrf_token
from libs.devstack.ports import free_port
from libs.devstack.smtp_sink import messages_to
from services.alerting.config import AlertingSettings
from services.alerting.main import build
from services.reporting.config import ReportingSettings
from services.reporting.main import build as build_reporting
from tests.conftest import Mailbox, ServiceUnderTest, StartService, TestTenant, eventually, provision_tenant
from tests.integration.test_alerting_followups import _alerting

pytestmark = pytest.mark.integration

DESK = "http://127.0.0.1:8004"
CHECK_YOUR_EMAIL = "Check your email"
EXPIRED = "This sign-in link has expired or was already used."


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each ``Set-Cookie`` of a response, by name: the whole header (value and attributes)."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def _cookie_value(response: httpx.Response, name: str) -> str:
    return _set_cookies(response)[name].split("=", 1)[1].split(";", 1)[0]


def _hidden(page: str) -> str:
    found = re.search(r'name="signin_token" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


class Browser:
    """What a browser keeps between the pages: the cookies (sent by hand here, as the test client
    keeps no ``Secure`` cookie over http://testserver)."""

    def __init__(self, desk: ServiceUnderTest) -> None:
        self.desk = desk
        self.cookies: dict[str, str] = {}

    def _headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for name, header in _set_cookies(response).items():
            value = header.split("=", 1)[1].split(";", 1)[0].strip('"')
            if value and "Max-Age=0" not in header:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    async def get(self, path: str, **params: str) -> httpx.Response:
        return self._keep(await self.desk.client.get(path, params=params, headers=self._headers()))

    async def post(self, path: str, form: dict[str, str], **params: str) -> httpx.Response:
        response = await self.desk.client.post(path, data=form, params=params, headers=self._headers())
        return self._keep(response)

    async def ask_for_link(self, email: str, next_url: str | None = None) -> httpx.Response:
        page = await self.get("/signin", **({"next": next_url} if next_url else {}))
        assert page.status_code == 200
        form = {"email": email, "signin_token": _hidden(page.text), "next": next_url or ""}
        return await self.post("/signin", form)

    async def follow(self, link: str) -> httpx.Response:
        path = link.removeprefix(DESK)
        shown = self._keep(await self.desk.client.get(path, headers=self._headers()))
        assert shown.status_code == 200 and "Continue" in shown.text, shown.text
        action = re.search(r'<form method="post" action="([^"]+)"', shown.text)
        assert action is not None
        target = action.group(1).replace("&amp;", "&")
        response = await self.desk.client.post(
            target, data={"signin_token": _hidden(shown.text)}, headers=self._headers()
        )
        return self._keep(response)


def _address() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@desk.example"


def _mail_to(mailbox: Mailbox, address: str) -> list[EmailMessage]:
    return messages_to(mailbox.directory, address)


def _plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def _links(message: EmailMessage) -> list[str]:
    return re.findall(r"(http://\S+/signin/[A-Za-z0-9_-]+\S*)", _plain(message))


async def _one_mail(mailbox: Mailbox, address: str, count: int = 1) -> EmailMessage:
    async def arrived() -> list[EmailMessage]:
        mails = _mail_to(mailbox, address)
        return mails if len(mails) >= count else []

    mails: list[EmailMessage] = await eventually(arrived, within=15)
    return mails[count - 1]


async def _user(sut: ServiceUnderTest, tenant: TestTenant, email: str, **fields: Any) -> dict[str, Any]:
    body = {"email": email, "name": "Sam Signin", "role": "cx_manager", **fields}
    response = await sut.client.post("/v1/users", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def desk(start_service: StartService) -> tuple[ServiceUnderTest, ServiceUnderTest]:
    return await _alerting(start_service), await start_service(build_reporting, ReportingSettings)


async def _signed_in(
    desk: ServiceUnderTest, tenant: TestTenant, mailbox: Mailbox, email: str | None = None
) -> tuple[Browser, dict[str, Any]]:
    address = email or _address()
    user = await _user(desk, tenant, address)
    browser = Browser(desk)
    assert CHECK_YOUR_EMAIL in (await browser.ask_for_link(address)).text
    (link,) = _links(await _one_mail(mailbox, address))
    used = await browser.follow(link)
    assert used.status_code == 303, used.text
    return browser, user


async def _summary_status(reporting: ServiceUnderTest, session_cookie: str) -> int:
    response = await reporting.client.get(
        "/v1/reports/summary", headers={"Cookie": f"nps_session={session_cookie}"}
    )
    return response.status_code


async def test_a_link_signs_in_once_and_opens_the_report(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, reporting = desk
    tenant = await provision_tenant(alerting.runtime, reporting.runtime)
    address = _address()
    await _user(alerting, tenant, address.upper())
    browser = Browser(alerting)

    page = await browser.get("/signin", next="/desk/cases/42")
    assert 'for="email"' in page.text
    # The page's one inline style is allowed by its hash, and nothing else is.
    (style,) = re.findall(r"<style>(.*?)</style>", page.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in page.headers["content-security-policy"]
    assert "&#34;" not in style
    signin_cookie = _set_cookies(page)["nps_signin"]
    assert "HttpOnly" in signin_cookie and "SameSite=strict" in signin_cookie
    sent = await browser.post(
        "/signin", {"email": f" {address} ", "signin_token": _hidden(page.text), "next": "/desk/cases/42"}
    )
    assert sent.status_code == 200 and CHECK_YOUR_EMAIL in sent.text
    mail = await _one_mail(smtp_sink, address)
    assert mail["Subject"] == "Sign in to the NPS case desk"
    assert tenant.name in _plain(mail)
    (link,) = _links(mail)
    assert (
        link.startswith(f"{DESK}/signin/")
        and "next=http%3A%2F%2F127.0.0.1%3A8004%2Fdesk%2Fcases%2F42" in link
    )

    # A mail scanner fetching the link uses nothing up: the GET only shows the button.
    assert (await alerting.client.get(link.removeprefix(DESK))).status_code == 200
    used = await browser.follow(link)
    assert used.status_code == 303
    assert used.headers["location"] == f"{DESK}/desk/cases/42"
    session = _set_cookies(used)["nps_session"]
    for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure", "Max-Age=43200"):
        assert attribute in session
    again = await browser.follow(link)
    assert again.status_code == 400 and EXPIRED in again.text
    assert 'href="/signin' in again.text

    cookie = browser.cookies["nps_session"]

    async def report_opens() -> bool:
        return await _summary_status(reporting, cookie) == 200

    await eventually(report_opens, within=20)
    assert (await _summary_status(reporting, cookie + "x")) == 401


async def test_an_expired_or_forged_link_does_not_sign_in(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, _ = desk
    tenant = await provision_tenant(alerting.runtime)
    address = _address()
    user = await _user(alerting, tenant, address)
    browser = Browser(alerting)
    await browser.ask_for_link(address)
    (link,) = _links(await _one_mail(smtp_sink, address))
    async with alerting.runtime.database.uow() as uow:
        await uow.session.execute(
            text(
                "UPDATE alerting.magic_links SET expires_at = now() - interval '1 minute' WHERE user_id = :u"
            ),
            {"u": user["id"]},
        )
        await uow.commit()

    expired = await browser.follow(link)
    assert expired.status_code == 400 and EXPIRED in expired.text
    forged = await browser.follow(f"{DESK}/signin/{'A' * 43}")
    assert forged.status_code == 400 and EXPIRED in forged.text
    assert "nps_session" not in browser.cookies


async def test_a_form_without_its_double_submit_token_is_refused(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, _ = desk
    tenant = await provision_tenant(alerting.runtime)
    address = _address()
    await _user(alerting, tenant, address)
    browser = Browser(alerting)
    page = await browser.get("/signin")

    without_field = await browser.post("/signin", {"email": address})
    assert without_field.status_code == 403 and "could not be checked" in without_field.text
    wrong = await browser.post("/signin", {"email": address, "signin_token": "B" * 43})
    assert wrong.status_code == 403
    no_cookie = await alerting.client.post(
        "/signin", data={"email": address, "signin_token": _hidden(page.text)}
    )
    assert no_cookie.status_code == 403
    assert _mail_to(smtp_sink, address) == []


async def test_an_unknown_address_gets_the_same_page_and_no_email(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, _ = desk
    tenant = await provision_tenant(alerting.runtime)
    known, unknown = _address(), _address()
    await _user(alerting, tenant, known)
    browser = Browser(alerting)

    for_unknown = await browser.ask_for_link(unknown)
    for_known = await browser.ask_for_link(known)
    assert for_unknown.status_code == for_known.status_code == 200
    assert for_unknown.text == for_known.text
    await _one_mail(smtp_sink, known)
    assert _mail_to(smtp_sink, unknown) == []
    not_an_address = await browser.ask_for_link("nobody\x00@x")
    assert not_an_address.status_code == 400 and "Enter your email address" in not_an_address.text


async def test_one_address_of_two_tenants_gets_a_link_for_each(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, _ = desk
    first, second = await provision_tenant(alerting.runtime), await provision_tenant(alerting.runtime)
    address = _address()
    await _user(alerting, first, address)
    await _user(alerting, second, address)

    await Browser(alerting).ask_for_link(address)
    mail = await _one_mail(smtp_sink, address)
    assert len(_links(mail)) == 2
    assert first.name in _plain(mail) and second.name in _plain(mail)


async def test_at_most_five_links_in_fifteen_minutes(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, _ = desk
    tenant = await provision_tenant(alerting.runtime)
    address = _address()
    await _user(alerting, tenant, address)
    browser = Browser(alerting)
    for _ in range(6):
        assert CHECK_YOUR_EMAIL in (await browser.ask_for_link(address)).text
    await _one_mail(smtp_sink, address, count=5)
    async with alerting.runtime.database.uow() as uow:
        count = await uow.session.scalar(
            text(
                "SELECT count(*) FROM alerting.magic_links l JOIN alerting.users u ON u.id = l.user_id "
                "WHERE u.email = :e"
            ),
            {"e": address},
        )
    assert count == 5


async def test_signing_out_ends_the_session_everywhere(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, reporting = desk
    tenant = await provision_tenant(alerting.runtime, reporting.runtime)
    browser, _ = await _signed_in(alerting, tenant, smtp_sink)
    cookie = browser.cookies["nps_session"]

    async def report_status(expected: int) -> bool:
        return await _summary_status(reporting, cookie) == expected

    await eventually(lambda: report_status(200))
    refused = await browser.post("/signout", {"csrf_token": "not-it"})
    assert refused.status_code == 403
    signed_out = await browser.post("/signout", {"csrf_token": csrf_token(cookie)})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/signin"
    assert "nps_session" not in browser.cookies
    await eventually(lambda: report_status(401))
    # The old cookie no longer opens the desk's pages either: signing out again asks to sign in.
    again = await alerting.client.post(
        "/signout", data={"csrf_token": csrf_token(cookie)}, headers={"Cookie": f"nps_session={cookie}"}
    )
    assert again.status_code == 303 and "/signin?next=" in again.headers["location"]


async def test_deactivating_a_user_ends_their_sessions(
    desk: tuple[ServiceUnderTest, ServiceUnderTest], smtp_sink: Mailbox
) -> None:
    alerting, reporting = desk
    tenant = await provision_tenant(alerting.runtime, reporting.runtime)
    address = _address()
    browser, user = await _signed_in(alerting, tenant, smtp_sink, address)
    cookie = browser.cookies["nps_session"]

    async def report_status(expected: int) -> bool:
        return await _summary_status(reporting, cookie) == expected

    await eventually(lambda: report_status(200))
    deactivated = await alerting.client.patch(
        f"/v1/users/{user['id']}", json={"active": False}, headers=tenant.headers
    )
    assert deactivated.status_code == 200
    await eventually(lambda: report_status(401))
    async with alerting.runtime.database.uow() as uow:
        open_sessions = await uow.session.scalar(
            text("SELECT count(*) FROM alerting.web_sessions WHERE user_id = :u AND ended_at IS NULL"),
            {"u": user["id"]},
        )
    assert open_sessions == 0
    assert CHECK_YOUR_EMAIL in (await browser.ask_for_link(address)).text
    assert len(_mail_to(smtp_sink, address)) == 1


async def test_a_mail_server_that_is_down_gives_a_try_again_page(start_service: StartService) -> None:
    # Its own alerting (fresh: its own consumer groups), whose mail server is not there.
    alerting = await start_service(
        build,
        AlertingSettings,
        fresh=True,
        smtp_url=f"smtp://127.0.0.1:{free_port()}",
        sla_check_seconds=3600,
    )
    tenant = await provision_tenant(alerting.runtime)
    address = _address()
    await _user(alerting, tenant, address)

    answer = await Browser(alerting).ask_for_link(address)
    assert answer.status_code == 503
    assert "could not be sent" in answer.text and "try again" in answer.text.lower()
