"""Changing a case through the API."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from libs.common.db import UnitOfWork
from services.alerting.domain.cases import CaseStatus, transition
from services.alerting.domain.revisions import Resolution
from services.alerting.handlers.common import emit_updated
from services.alerting.handlers.timeline import after_change
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
) -> FollowupCase:
    """Move a case on (``InvalidTransition`` if the rules forbid it) and tell the others."""
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
    case.updated_at = now
    after_change(case, await uow.repository.desk_policy(tenant_id), now)
    emit_updated(uow, case, f"status:{status.value}", now)
    log.info(
        "followup.updated",
        extra={"case_id": str(case_id), "tenant_id": str(tenant_id), "status": status.value},
    )
    return case
