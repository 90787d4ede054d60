"""The SLA: stamp the cases nobody contacted in time and escalate them."""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter, Gauge

from libs.common.db import UnitOfWork
from services.alerting.domain import notices
from services.alerting.domain.cases import BREACHABLE_STATUSES, CaseStatus, is_breached
from services.alerting.handlers.common import case_facts, emit_updated
from services.alerting.repository import AlertingRepository, CaseNotice

log = logging.getLogger(__name__)

CASES_BREACHED = Counter(
    "nps_alerting_cases_breached_total", "Follow-up cases not contacted by their due time"
)
OPEN_CASES = Gauge("nps_alerting_open_cases", "Cases nobody has contacted yet, as of the last SLA check")


BREACH_BATCH = 1000


async def mark_breached(
    uow: UnitOfWork[AlertingRepository],
    now: datetime,
    *,
    escalation_email: str | None = None,
    limit: int = BREACH_BATCH,
    desk_url: str | None = None,
) -> int:
    """Stamp every case still open after its due time as breached (up to ``limit`` per call), tell
    the others, and queue an escalation to ``escalation_email``, or else the case's owner."""
    candidates = await uow.repository.breach_candidates(
        now, statuses=[status.value for status in BREACHABLE_STATUSES], limit=limit
    )
    cases = [case for case in candidates if is_breached(CaseStatus(case.status), case.due_at, now)]
    escalations: list[CaseNotice] = []
    for case in cases:
        case.breached_at = now
        case.updated_at = now
        emit_updated(uow, case, "breached", now)
        recipient = escalation_email or case.owner_email
        if recipient is None:
            log.warning("followup.breach_unnotified", extra={"case_id": str(case.id)})
            continue
        notice = notices.case_breached(case_facts(case, desk_url), recipient, now)
        escalations.append(CaseNotice(case.tenant_id, case.id, notice))
    await uow.repository.queue_notifications(escalations)
    if cases:
        CASES_BREACHED.inc(len(cases))
        log.info("followup.breached", extra={"cases": len(cases)})
    return len(cases)


async def refresh_open_cases(uow: UnitOfWork[AlertingRepository]) -> int:
    count = await uow.repository.count_open_cases()
    OPEN_CASES.set(count)
    return count
