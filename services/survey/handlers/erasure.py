"""The survey's part of a customer's erasure (README, "Privacy: erasure")."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from libs.common.db import UnitOfWork
from libs.common.erasure import customer_key
from libs.common.events import ErasureRequested
from services.survey.domain.tokens import token_hash
from services.survey.repository import SurveyRepository


async def erase_customer(
    uow: UnitOfWork[Any], tenant_id: uuid.UUID, request: ErasureRequested, now: datetime, *, erasure_key: str
) -> dict[str, int]:
    """Anonymise the customer's invitations and answers, and leave a tombstone (a keyed hash of the
    id) so that a survey request made before the erasure and still on its way is not scheduled."""
    repository: SurveyRepository = uow.repository
    invitations = await repository.customer_invitations(tenant_id, request.customer_id)
    # Hashes of random tokens nobody holds: unique as the column requires, and no link matches one.
    await repository.erase_invitations(
        [(invitation, token_hash(secrets.token_urlsafe(32))) for invitation in invitations], now
    )
    responses = await repository.erase_answers(tenant_id, request.customer_id)
    await repository.record_erasure(
        request.erasure_id,
        tenant_id,
        customer_key(erasure_key, tenant_id, request.customer_id),
        request.requested_at,
    )
    return {"invitations": len(invitations), "responses": responses}
