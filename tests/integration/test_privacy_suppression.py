"""A permanent unsubscribe keeps no address: the survey's suppression list holds keyed hashes, and
an address that unsubscribed is still refused afterwards, under any customer id and any case."""

from __future__ import annotations

from sqlalchemy import text

from services.survey.domain.tokens import survey_token
from tests.conftest import Mailbox, StartService
from tests.integration.test_survey_flow import (
    SECRET,
    asked_once,
    email_to,
    invitation_in,
    mail_to,
    request_survey,
)


async def test_an_unsubscribe_is_kept_as_a_hash_and_still_refuses_the_address(
    start_service: StartService, kafka_bootstrap: str, smtp_sink: Mailbox
) -> None:
    service, tenant, customer, address, first = await asked_once(start_service, kafka_bootstrap)
    await email_to(smtp_sink.directory, address)
    token = survey_token(SECRET, first)
    done = await service.client.post(f"/u/{token}")
    assert done.status_code == 200 and "You are unsubscribed" in done.text

    async with service.runtime.database.uow() as uow:
        rows = (
            await uow.session.execute(
                text("SELECT * FROM survey.suppressions WHERE tenant_id = :tenant"),
                {"tenant": tenant.tenant_id},
            )
        ).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0]).lower()
    local_part = address.split("@")[0]
    assert local_part not in stored and address not in stored
    assert "unsubscribed" in stored

    # As after an erasure: another customer id, the address in capitals. Still never emailed.
    later = await request_survey(kafka_bootstrap, tenant, customer=f"{customer}-new", email=address.upper())
    failed = await invitation_in(service, tenant, f"{customer}-new", later, "failed")
    assert "unsubscribed" in failed["last_error"]
    assert len(mail_to(smtp_sink.directory, address)) == 1
