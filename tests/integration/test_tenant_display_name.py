"""Emails name the company as its customers know it: the tenant's display name, set when it is
created and changed later through the admin API or the CLI, reaches the survey as an event."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from typing import Any

from services.survey.config import SurveySettings
from services.survey.main import build as build_survey
from services.trigger.config import TriggerSettings
from services.trigger.main import build as build_trigger
from tests.conftest import Mailbox, ServiceUnderTest, StartService, eventually
from tests.integration.test_survey_flow import SECRET, mail_to, score_links, unique_address
from tests.support.factories import purchase


async def _email(mailbox: Mailbox, address: str) -> EmailMessage:
    async def arrived() -> list[Any]:
        return mail_to(mailbox.directory, address)

    [message] = await eventually(arrived, within=30)
    assert isinstance(message, EmailMessage)
    return message


def _question(message: EmailMessage) -> str:
    text = message.get_body(("plain",))
    assert text is not None
    return str(text.get_content())


async def _key(trigger: ServiceUnderTest, admin: dict[str, str], name: str) -> dict[str, str]:
    created = await trigger.client.post(f"/v1/admin/tenants/{name}/api-keys", headers=admin)
    assert created.status_code == 201
    return {"Authorization": f"Bearer {created.json()['api_key']}"}


async def test_the_email_names_the_display_name_not_the_slug_and_follows_a_change(
    start_service: StartService, smtp_sink: Mailbox
) -> None:
    trigger = await start_service(build_trigger, TriggerSettings)
    survey = await start_service(
        build_survey,
        SurveySettings,
        survey_token_secret=SECRET,
        survey_public_url="http://testserver",
        send_poll_seconds=0.05,
    )
    admin = {"X-Admin-Token": trigger.runtime.settings.admin_token.get_secret_value()}
    name = f"acme-{uuid.uuid4().hex[:8]}"
    created = await trigger.client.post(
        "/v1/admin/tenants", json={"name": name, "display_name": "Acme Inc."}, headers=admin
    )
    assert created.status_code == 201 and created.json()["display_name"] == "Acme Inc."
    headers = await _key(trigger, admin, name)
    assert (await trigger.client.put("/v1/policy", json={"rest_period_days": 0}, headers=headers)).is_success

    first = unique_address()
    posted = await trigger.client.post("/v1/events", json=purchase("c-1", email=first), headers=headers)
    assert posted.status_code == 202
    first_email = await _email(smtp_sink, first)
    question = _question(first_email)
    assert "How likely are you to recommend Acme Inc. to a friend or colleague?" in question
    assert name not in question

    changed = await trigger.client.patch(
        f"/v1/admin/tenants/{name}", json={"display_name": "Acme Nordic A/S"}, headers=admin
    )
    assert changed.status_code == 200 and changed.json()["display_name"] == "Acme Nordic A/S"
    listed = await trigger.client.get("/v1/admin/tenants", headers=admin)
    assert {t["name"]: t["display_name"] for t in listed.json()}[name] == "Acme Nordic A/S"
    # The survey hears of the change as an event, on another topic than the survey requests: once
    # it has, its pages name the new display name (the first invitee opening the link again sees it),
    # and so does every email after.
    survey_page = score_links(first_email)[0].rsplit("/", 1)[0]

    async def page_follows_the_change() -> bool:
        page = await survey.client.get(survey_page)
        return page.status_code == 200 and "recommend Acme Nordic A/S to a friend" in page.text

    await eventually(page_follows_the_change, within=30)
    second = unique_address()
    posted = await trigger.client.post("/v1/events", json=purchase("c-2", email=second), headers=headers)
    assert posted.status_code == 202
    assert "recommend Acme Nordic A/S to a friend" in _question(await _email(smtp_sink, second))

    unknown = await trigger.client.patch(
        "/v1/admin/tenants/nope-x", json={"display_name": "X"}, headers=admin
    )
    assert unknown.status_code == 404
