"""Did following up work? A set number of days after a case was resolved by somebody, the customer
is asked the NPS question once more (the recovery survey), and their answer is kept on the case.

The request is an event (``followup.recovery_due``) written with the case's change in one
transaction, under an id derived from the case: a job killed mid-batch requests nothing, and one
re-run requests nothing twice. The trigger decides whether it may be sent (unsubscribes) and asks
the survey service; the answer comes back as a ``survey.responded`` whose context names the case.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter

from libs.common.db import UnitOfWork
from libs.common.events import FollowupRecoveryDue
from services.alerting.handlers.common import emit_updated, event_id
from services.alerting.handlers.timeline import entry
from services.alerting.models import FollowupCase
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)

RECOVERY_REQUESTED = Counter("nps_alerting_recovery_surveys_requested_total", "Recovery surveys requested")
RECOVERY_ANSWERED = Counter("nps_alerting_recovery_surveys_answered_total", "Recovery surveys answered")

RECOVERY_BATCH = 500


async def request_recoveries(
    uow: UnitOfWork[AlertingRepository], now: datetime, *, limit: int = RECOVERY_BATCH
) -> int:
    """Request the recovery survey of every resolved case whose time has come (up to ``limit``)."""
    cases = await uow.repository.recoveries_due(now, limit)
    lines = []
    for case in cases:
        case.recovery_requested_at = now
        case.updated_at = now
        if case.customer_email is None or case.resolved_at is None:
            lines.append(entry(case, "recovery_skipped", now, body="no address to ask", dedup_key="recovery"))
            continue
        uow.emit(
            _due(case, case.customer_email, case.resolved_at, now),
            tenant_id=case.tenant_id,
            subject=str(case.id),
            event_id=event_id(case.id, "recovery"),
            time=now,
        )
        lines.append(
            entry(case, "recovery_requested", now, body="recovery survey requested", dedup_key="recovery")
        )
    await uow.repository.add_case_events(lines)
    if cases:
        uow.count(RECOVERY_REQUESTED, len(cases))
        log.info("followup.recovery_requested", extra={"cases": len(cases)})
    return len(cases)


def _due(case: FollowupCase, email: str, resolved_at: datetime, now: datetime) -> FollowupRecoveryDue:
    return FollowupRecoveryDue(
        case_id=case.id,
        response_id=case.response_id,
        customer_id=case.customer_id,
        email=email,
        name=case.customer_name,
        touchpoint=case.touchpoint,
        score=case.score,
        resolved_at=resolved_at,
        root_cause=case.root_cause,
        due_at=now,
    )


async def record_recovery(
    uow: UnitOfWork[AlertingRepository], case: FollowupCase, score: int, revision: int, now: datetime
) -> None:
    """The customer answered the recovery survey: the score goes on the case (a later revision of
    that answer replaces it), never opening a case of its own."""
    first = case.recovery_score is None
    case.recovery_score = score
    case.recovery_answered_at = case.recovery_answered_at or now
    case.updated_at = now
    body = f"recovery survey answered: {score}"
    await uow.repository.add_case_events(
        [
            entry(
                case,
                "recovery_answered",
                now,
                body=body,
                data={"score": score},
                dedup_key=f"recovery:{revision}",
            )
        ]
    )
    emit_updated(uow, case, f"recovery:{revision}", now)
    if first:
        uow.count(RECOVERY_ANSWERED)
