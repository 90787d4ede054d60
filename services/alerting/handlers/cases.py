"""Changing a case through the API."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from libs.common.db import UnitOfWork
from services.alerting.domain.cases import CaseStatus, transition
from services.alerting.domain.revisions import Resolution
from services.alerting.handlers.common import API_ACTOR, Actor, record_case_event
from services.alerting.models import FollowupCase
from services.alerting.repository import AlertingRepository

log = logging.getLogger(__name__)


class CaseNotFound(Exception):
    pass


async def update_case(
    uow: UnitOfWork[AlertingRepository],
    *,
    tenant_id: uuid.UUID,
    case_id: uuid.UUID,
    status: CaseStatus,
    note: str | None,
    now: datetime,
    actor: Actor = API_ACTOR,
) -> FollowupCase:
    """Move a case on (``InvalidTransition`` if the rules forbid it), add it to the case's timeline
    and tell the others."""
    case = await uow.repository.get_case(tenant_id, case_id, for_update=True)
    if case is None:
        raise CaseNotFound(case_id)
    case.status = transition(CaseStatus(case.status), status).value
    if status is CaseStatus.CONTACTED:
        case.contacted_at = now
    elif status is CaseStatus.RESOLVED:
        case.resolved_at = now
        case.resolution = Resolution.HANDLED.value
    if note is not None:
        case.note = note
    # A status is reached once per case unless it was reopened: the event id stays what it always
    # was for the first time, and becomes the timeline entry's after a reopening.
    change = f"status:{status.value}" if case.reopened_at is None else None
    await record_case_event(
        uow, case, actor, status.value, now, body=note, data={"status": status.value}, change=change
    )
    log.info(
        "followup.updated",
        extra={"case_id": str(case_id), "tenant_id": str(tenant_id), "status": status.value},
    )
    return case
