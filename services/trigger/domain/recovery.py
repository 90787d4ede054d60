"""The recovery survey: whether a resolved follow-up case's customer may be asked the NPS question
once more, and how that relates to the rest period.

The recovery survey is **exempt from the rest period**: it is the point of it to ask the customer
again a set number of days (14 by default) after their case was resolved, well inside any rest
period, and it is asked once per case (its invitation id is derived from the case). It is
**recorded as a contact**: it moves the customer's invitation clock like any survey, so the next
regular survey waits a full rest period after it. It **respects unsubscribes**: an unsubscribed
customer is not asked, and the decision says so (the survey service's suppression list is checked
again when sending, for bounces and complaints).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from services.trigger.domain.rules import Outcome, Reason

RECOVERY_NAMESPACE = uuid.UUID("7d0c5c1e-36f4-4b8a-9e52-0f3f2b1d9a77")
#: How the decisions table names a recovery survey sent.
RECOVERY_REASON = "recovery"


def recovery_invitation_id(case_id: uuid.UUID) -> uuid.UUID:
    """One recovery survey per case, however often its request is delivered."""
    return uuid.uuid5(RECOVERY_NAMESPACE, str(case_id))


def recovery_outcome(suppressed_at: datetime | None) -> tuple[Outcome, str]:
    """Invite, unless the customer unsubscribed."""
    if suppressed_at is not None:
        return Outcome.SKIPPED, Reason.UNSUBSCRIBED.value
    return Outcome.INVITED, RECOVERY_REASON
