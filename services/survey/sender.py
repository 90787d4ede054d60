"""The sender loop: claims due invitations, emails them, records what happened.

Three steps, so that no database transaction stays open while talking to a mail server:

1. claim: one short transaction marks a batch ``sending`` (``attempts`` + 1) and commits;
2. send: each email over SMTP, a bounded number at a time;
3. record: one transaction marks the batch ``sent`` (with ``survey.sent.v1`` in the outbox),
   ``scheduled`` again with a backoff, or ``failed``.

Killing the process between any two steps loses nothing: an invitation left ``sending`` is claimed
again once ``sending_timeout_seconds`` have passed. The one cost is at-least-once delivery: if the
process dies after the mail server accepted a message and before step 3 committed, that person
gets the email a second time after the timeout. The repeat carries the same link and the same
Message-ID, and an answer can be given only once, so it does no harm beyond the extra email.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from libs.common.db import Database
from libs.common.kafka import is_transient
from libs.common.mail import DeliveryError, SmtpTarget, send_email
from libs.common.service import Loop, Runtime
from services.survey import handlers
from services.survey.config import SurveySettings
from services.survey.domain.delivery import (
    Failed,
    Outcome,
    Retry,
    RetryPolicy,
    Sent,
    after_failure,
    before_sending,
    scrub,
)
from services.survey.domain.tokens import survey_token
from services.survey.handlers import ClaimedInvitation
from services.survey.rendering import Recipient, invitation_email

log = logging.getLogger(__name__)

EMAILS = Counter(
    "nps_survey_emails_total",
    "Invitation emails by outcome: sent, retry (temporary failure, tried again later), failed (given up)",
    ["outcome"],
)


class Sender:
    def __init__(self, database: Database, settings: SurveySettings) -> None:
        self._database = database
        self._settings = settings
        self._smtp = SmtpTarget.from_url(settings.smtp_url)
        self._policy = RetryPolicy(
            max_attempts=settings.max_send_attempts,
            base=timedelta(seconds=settings.retry_base_seconds),
            cap=timedelta(seconds=settings.retry_max_seconds),
        )
        self._sending_timeout = timedelta(seconds=settings.sending_timeout_seconds)
        self._slots = asyncio.Semaphore(settings.send_concurrency)

    async def run(self) -> None:
        settings = self._settings
        delay = settings.send_poll_seconds
        while True:
            try:
                claimed = await self.send_due()
            except Exception as error:
                # The database being away is the usual reason; keep trying, loudly. Whatever was
                # claimed stays ``sending`` and is picked up again after the timeout.
                if is_transient(error):
                    log.warning("sender.retrying", extra={"error": repr(error)[:300]})
                else:
                    log.exception("sender.failed")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = settings.send_poll_seconds
            if claimed < settings.send_batch_size:
                await asyncio.sleep(settings.send_poll_seconds)

    async def send_due(self) -> int:
        """Claim, send and record one batch; return how many invitations it claimed."""
        now = datetime.now(UTC)
        async with self._database.uow() as uow:
            claimed = await handlers.claim_due(
                uow, now=now, sending_timeout=self._sending_timeout, limit=self._settings.send_batch_size
            )
            await uow.commit()
        if not claimed:
            return 0
        outcomes: list[tuple[ClaimedInvitation, Outcome]] = []
        to_send = []
        for invitation in claimed:
            verdict = before_sending(
                attempts=invitation.attempts, expires_at=invitation.expires_at, now=now, policy=self._policy
            )
            if verdict is None:
                to_send.append(invitation)
            else:
                outcomes.append((invitation, verdict))
        tasks = [asyncio.create_task(self._deliver(invitation)) for invitation in to_send]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # Shutting down mid-batch: record what already went out, so it is not sent again.
            await self._record(outcomes + _finished(to_send, tasks))
            raise
        for invitation, result in zip(to_send, results, strict=True):
            if isinstance(result, BaseException):
                # A bug, not a delivery problem. The invitation stays ``sending``, is tried again
                # after the timeout, and is given up once it has used its attempts.
                log.error(
                    "invitation.send_crashed",
                    extra={"invitation_id": str(invitation.id)},
                    exc_info=(type(result), result, result.__traceback__),
                )
        await self._record(outcomes + _finished(to_send, tasks))
        return len(claimed)

    async def _deliver(self, invitation: ClaimedInvitation) -> Outcome:
        settings = self._settings
        async with self._slots:
            try:
                message = invitation_email(
                    invitation_id=invitation.id,
                    recipient=Recipient(invitation.email, invitation.name),
                    tenant_name=invitation.tenant_name,
                    token=survey_token(settings.survey_token_secret.get_secret_value(), invitation.id),
                    public_url=settings.survey_public_url,
                    mail_from=settings.mail_from,
                    mail_domain=settings.mail_domain,
                    now=datetime.now(UTC),
                )
            except ValueError as error:
                return Failed(scrub(f"cannot build the message: {type(error).__name__}: {error}"))
            try:
                await send_email(self._smtp, message, timeout_seconds=settings.smtp_timeout_seconds)
            except DeliveryError as error:
                return after_failure(
                    attempts=invitation.attempts,
                    permanent=error.permanent,
                    error=str(error),
                    now=datetime.now(UTC),
                    policy=self._policy,
                )
            return Sent(datetime.now(UTC))

    async def _record(self, outcomes: Sequence[tuple[ClaimedInvitation, Outcome]]) -> None:
        if not outcomes:
            return
        delay = 0.2
        while True:
            try:
                async with self._database.uow() as uow:
                    await handlers.record_outcomes(uow, outcomes)
                    await uow.commit()
                break
            except Exception as error:
                # Not recording means re-sending after the timeout; a short outage is worth waiting out.
                if not is_transient(error) or delay > 5:
                    raise
                log.warning("sender.record_retrying", extra={"error": repr(error)[:300]})
                await asyncio.sleep(delay)
                delay *= 2
        for invitation, outcome in outcomes:
            fields = {
                "invitation_id": str(invitation.id),
                "tenant_id": str(invitation.tenant_id),
                "attempts": invitation.attempts,
            }
            if isinstance(outcome, Sent):
                EMAILS.labels("sent").inc()
                log.info("invitation.sent", extra=fields)
            elif isinstance(outcome, Retry):
                EMAILS.labels("retry").inc()
                log.warning(
                    "invitation.retry_scheduled",
                    extra={**fields, "retry_at": outcome.at.isoformat(), "error": outcome.error},
                )
            else:
                EMAILS.labels("failed").inc()
                log.warning("invitation.failed", extra={**fields, "error": outcome.error})


def _finished(
    invitations: Sequence[ClaimedInvitation], tasks: Sequence[asyncio.Task[Outcome]]
) -> list[tuple[ClaimedInvitation, Outcome]]:
    return [
        (invitation, task.result())
        for invitation, task in zip(invitations, tasks, strict=True)
        if task.done() and not task.cancelled() and task.exception() is None
    ]


def sender_loop(settings: SurveySettings) -> Loop:
    async def run(runtime: Runtime) -> None:
        await Sender(runtime.database, settings).run()

    return run
