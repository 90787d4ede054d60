"""The sender loop: claims due invitations, emails them, records what happened.

Three steps, so that no database transaction stays open while talking to a mail server:

1. claim: one short transaction marks a batch ``sending`` (``attempts`` + 1) and commits;
2. send: each email over SMTP, a bounded number at a time;
3. record: each accepted email is marked ``sent`` (with ``survey.sent.v1`` in the outbox) at once,
   in its own short transaction; when the batch is done, one transaction marks the rest
   ``scheduled`` again with a backoff, or ``failed``.

Killing the process between any two steps loses nothing: an invitation left ``sending`` is claimed
again once ``sending_timeout_seconds`` have passed. The one cost is at-least-once delivery: if the
process dies after the mail server accepted a message and before its record committed, that person
gets the email a second time after the timeout; at most the messages in flight (``send_concurrency``)
per crash, measured by ``bench/survey_kill.py``. The repeat carries the same link and the same
Message-ID, and an answer can be given only once, so it does no harm beyond the extra email.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr

import dkim  # type: ignore[import-untyped]
from prometheus_client import Counter

from libs.common import tracing
from libs.common.db import Database
from libs.common.jobs import Due, Job
from libs.common.kafka import is_transient
from libs.common.mail import DeliveryError, SmtpTarget, send_email, smtp_histogram
from libs.common.service import JobFactory
from services.survey import handlers
from services.survey.config import SurveySettings
from services.survey.domain.delivery import (
    Failed,
    Outcome,
    Retry,
    RetryPolicy,
    Sent,
    Wait,
    after_failure,
    before_sending,
    scrub,
)
from services.survey.domain.pacing import SharedPace
from services.survey.domain.tokens import survey_token
from services.survey.handlers import ClaimedInvitation, questions_in
from services.survey.rendering import Recipient, invitation_email
from services.survey.repository import SurveyRepository

log = logging.getLogger(__name__)

EMAILS = Counter(
    "nps_survey_emails_total",
    "Invitation emails by outcome: sent, retry (temporary failure, tried again later), failed (given up)",
    ["outcome"],
)
SMTP_SECONDS = smtp_histogram("survey")
REMINDERS = Counter("nps_survey_reminders_total", "Reminder emails by outcome: sent, failed", ["outcome"])
FAILED = Counter(
    "nps_survey_invitations_failed_total",
    "Invitations given up for good, by reason: expired, attempts_exhausted, refused, recipient_refused, "
    "suppressed, unbuildable, tenant_unknown",
    ["reason"],
)
RATE_WAITS = Counter(
    "nps_survey_rate_waits_total",
    "Invitations put back for a later slot by the tenant's sending rate (no attempt spent)",
)


class Signer:
    """DKIM-signs outgoing messages (relaxed/relaxed, rsa-sha256) when a key is configured."""

    HEADERS = (
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
    )

    def __init__(self, settings: SurveySettings) -> None:
        key = settings.dkim_private_key
        self._key = key.get_secret_value().encode() if key is not None else None
        self._selector = (settings.dkim_selector or "").encode()
        self._domain = (settings.dkim_domain or "").encode()

    def sign(self, message: EmailMessage) -> bytes | None:
        if self._key is None:
            return None
        raw = message.as_bytes(policy=SMTP)
        signature: bytes = dkim.sign(
            raw,
            self._selector,
            self._domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(self.HEADERS),
        )
        return signature + raw


class Sender:
    def __init__(self, database: Database[SurveyRepository], settings: SurveySettings) -> None:
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
        self._signer = Signer(settings)
        # Deliveries accepted by the server and not yet recorded; see _note_sent.
        self._accepted: list[tuple[ClaimedInvitation, Outcome]] = []
        self._recording: asyncio.Task[None] | None = None

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
        sendable = []
        for invitation in claimed:
            verdict: Outcome | None = before_sending(
                attempts=invitation.attempts, expires_at=invitation.expires_at, now=now, policy=self._policy
            )
            if verdict is None and invitation.suppressed:
                verdict = Failed("not sent: the address unsubscribed, bounced or complained", "suppressed")
            if verdict is None and invitation.tenant_name is None:
                verdict = Failed("not sent: no such tenant", "tenant_unknown")
            if verdict is None:
                sendable.append(invitation)
            else:
                outcomes.append((invitation, verdict))
        waits = await self._rate(sendable)
        to_send = []
        for invitation in sendable:
            wait = waits[invitation.id]
            if wait > 0:
                # Over the tenant's rate: back in line for its slot. Waiting is not failing.
                outcomes.append((invitation, Wait(now + timedelta(seconds=wait))))
            else:
                to_send.append(invitation)
        tasks = [asyncio.create_task(self._deliver(invitation)) for invitation in to_send]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # Shutting down mid-batch: record what already went out, so it is not sent again.
            await self._settle()
            await self._record(outcomes + _unrecorded(_finished(to_send, tasks)))
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
        await self._settle()
        await self._record(outcomes + _unrecorded(_finished(to_send, tasks)))
        return len(claimed)

    async def _rate(self, invitations: Sequence[ClaimedInvitation]) -> dict[uuid.UUID, float]:
        """Per invitation, 0 to send now, else the seconds until its slot in its tenant's rate.

        The rate is a row per tenant that every replica shares (``SharedPace``): one statement
        per tenant per batch gives the batch its slots. An invitation the rate put back holds its
        slot (paid for already), so when it comes back, to whichever replica, it goes without
        queueing again."""
        if not invitations:
            return {}
        now = time.time()
        waits: dict[uuid.UUID, float] = {}
        held: list[tuple[uuid.UUID, float]] = []
        async with self._database.uow() as uow:
            repository = uow.repository
            paid = await repository.take_held_slots([i.id for i in invitations], now)
            await repository.forget_full_buckets(now)
            by_tenant: dict[tuple[uuid.UUID, int], list[ClaimedInvitation]] = {}
            for invitation in invitations:
                at = paid.get(invitation.id)
                if at is None:
                    key = (invitation.tenant_id, invitation.look.send_rate_per_minute)
                    by_tenant.setdefault(key, []).append(invitation)
                # Up to a second early (a poll's granularity) is close enough.
                elif at - now > 1.0:
                    waits[invitation.id] = at - now
                    held.append((invitation.id, at))
                else:
                    waits[invitation.id] = 0.0
            for (tenant_id, per_minute), asking in by_tenant.items():
                pace = SharedPace(per_minute)
                tat = await repository.give_slots(f"send:{tenant_id}", len(asking), pace.interval, now)
                for invitation, wait in zip(asking, pace.slots(tat, now, len(asking)), strict=True):
                    waits[invitation.id] = wait
                    if wait > 0:
                        held.append((invitation.id, now + wait))
            await repository.hold_slots(held)
            await uow.commit()
        return waits

    async def _deliver(self, invitation: ClaimedInvitation, *, reminder: bool = False) -> Outcome:
        """Send one email, in a span of the invitation's own trace (the sender's batch mixes many)."""
        with tracing.span(
            "survey remind" if reminder else "survey send",
            parent=invitation.trace_context,
            kind=tracing.SpanKind.CLIENT,
            attributes={"nps.tenant_id": str(invitation.tenant_id), "nps.touchpoint": invitation.touchpoint},
        ) as span:
            outcome = await self._send_email(invitation, reminder=reminder)
            span.set_attribute("nps.outcome", type(outcome).__name__.lower())
            return outcome

    async def _send_email(self, invitation: ClaimedInvitation, *, reminder: bool) -> Outcome:
        settings = self._settings
        async with self._slots:
            try:
                message = invitation_email(
                    invitation_id=invitation.id,
                    recipient=Recipient(invitation.email, invitation.name),
                    token=survey_token(settings.survey_token_secret.get_secret_value(), invitation.id),
                    public_url=settings.survey_public_url,
                    mail_from=settings.mail_from,
                    mail_domain=settings.mail_domain,
                    now=datetime.now(UTC),
                    language=invitation.language,
                    branding=invitation.look.branding,
                    questions=questions_in(invitation.look, invitation.language),
                    reminder=reminder,
                )
                signed = self._signer.sign(message)
            except ValueError as error:
                return Failed(
                    scrub(f"cannot build the message: {type(error).__name__}: {error}"), "unbuildable"
                )
            try:
                if signed is None:
                    await send_email(
                        self._smtp,
                        message,
                        timeout_seconds=settings.smtp_timeout_seconds,
                        local_hostname=settings.mail_domain,
                        timing=SMTP_SECONDS,
                    )
                else:
                    await send_email(
                        self._smtp,
                        signed,
                        timeout_seconds=settings.smtp_timeout_seconds,
                        sender=parseaddr(settings.mail_from)[1],
                        recipients=[invitation.email],
                        local_hostname=settings.mail_domain,
                        timing=SMTP_SECONDS,
                    )
            except DeliveryError as error:
                return after_failure(
                    attempts=invitation.attempts,
                    permanent=error.permanent,
                    error=str(error),
                    now=datetime.now(UTC),
                    policy=self._policy,
                    recipient_refused=error.recipient_refused,
                )
            sent = Sent(datetime.now(UTC))
            if not reminder:
                # Now, not with the batch: a crash re-sends only what was in flight, where recording
                # with the batch re-sent every accepted message of it (bench/survey_kill.py: 50
                # duplicates a kill with batches of 50 before this).
                self._note_sent(invitation, sent)
            return sent

    def _note_sent(self, invitation: ClaimedInvitation, sent: Sent) -> None:
        """Group commit: deliveries that complete while a record is being written go into the next
        one, so the window is one short transaction, not a transaction per email."""
        self._accepted.append((invitation, sent))
        if self._recording is None or self._recording.done():
            self._recording = asyncio.create_task(self._record_accepted())

    async def _record_accepted(self) -> None:
        while self._accepted:
            batch, self._accepted = self._accepted, []
            await self._record(batch)

    async def _settle(self) -> None:
        """Wait until every accepted delivery is recorded."""
        while self._recording is not None and not self._recording.done():
            await asyncio.shield(self._recording)
        if self._accepted:
            await self._record_accepted()

    async def remind_due(self) -> int:
        """Send the reminders that are due. Each is marked before it is sent: at most once."""
        now = datetime.now(UTC)
        async with self._database.uow() as uow:
            claimed = await handlers.claim_reminders(uow, now=now, limit=self._settings.send_batch_size)
            expired = await handlers.record_expired(uow, now=now, limit=1000)
            await uow.commit()
        results = await asyncio.gather(
            *(self._deliver(invitation, reminder=True) for invitation in claimed), return_exceptions=True
        )
        for invitation, result in zip(claimed, results, strict=True):
            outcome = "sent" if isinstance(result, Sent) else "failed"
            REMINDERS.labels(outcome).inc()
            log.info("invitation.reminded", extra={"invitation_id": str(invitation.id), "outcome": outcome})
        return len(claimed) + expired

    async def _record(self, outcomes: Sequence[tuple[ClaimedInvitation, Outcome]]) -> None:
        if not outcomes:
            return
        delay = 0.2
        while True:
            try:
                async with self._database.uow() as uow:
                    await handlers.record_outcomes(uow, outcomes, now=datetime.now(UTC))
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
            elif isinstance(outcome, Wait):
                RATE_WAITS.inc()
            elif isinstance(outcome, Retry):
                EMAILS.labels("retry").inc()
                log.warning(
                    "invitation.retry_scheduled",
                    extra={**fields, "retry_at": outcome.at.isoformat(), "error": outcome.error},
                )
            else:
                EMAILS.labels("failed").inc()
                FAILED.labels(outcome.reason).inc()
                log.warning(
                    "invitation.failed", extra={**fields, "reason": outcome.reason, "error": outcome.error}
                )


def _unrecorded(outcomes: list[tuple[ClaimedInvitation, Outcome]]) -> list[tuple[ClaimedInvitation, Outcome]]:
    """Deliveries are recorded as they happen; the batch records the rest."""
    return [(invitation, outcome) for invitation, outcome in outcomes if not isinstance(outcome, Sent)]


def _finished(
    invitations: Sequence[ClaimedInvitation], tasks: Sequence[asyncio.Task[Outcome]]
) -> list[tuple[ClaimedInvitation, Outcome]]:
    return [
        (invitation, task.result())
        for invitation, task in zip(invitations, tasks, strict=True)
        if task.done() and not task.cancelled() and task.exception() is None
    ]


class SenderJob(Job):
    """The sender as a job of the service's runner: one batch per cycle. Whatever a failed cycle
    claimed stays ``sending`` and is claimed again after the timeout."""

    name = handlers.SENDER_JOB

    def __init__(self, database: Database[SurveyRepository], settings: SurveySettings) -> None:
        self._database = database
        self._sender = Sender(database, settings)
        self.batch_size = settings.send_batch_size
        self.every = settings.send_poll_seconds

    async def run_once(self) -> int:
        return await self._sender.send_due()

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            return await uow.repository.send_queue(datetime.now(UTC))


class RemindersJob(SenderJob):
    """Reminders and expiry, on their own clock so that a busy sender does not delay them."""

    name = "survey-reminders"

    def __init__(self, database: Database[SurveyRepository], settings: SurveySettings) -> None:
        super().__init__(database, settings)
        self.every = settings.lifecycle_poll_seconds

    async def run_once(self) -> int:
        return await self._sender.remind_due()

    async def due(self) -> Due:
        async with self._database.uow() as uow:
            return await uow.repository.reminder_queue(datetime.now(UTC))


def sender_job(settings: SurveySettings) -> JobFactory:
    return lambda runtime: SenderJob(runtime.database, settings)


def reminders_job(settings: SurveySettings) -> JobFactory:
    return lambda runtime: RemindersJob(runtime.database, settings)
