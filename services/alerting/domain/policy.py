"""A tenant's case-desk policy: its business hours and SLA, its root causes, the recovery survey,
who takes a case no routing rule places, and who hears of escalations. Absent settings are the
defaults a new tenant gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.alerting.domain.routing import Target
from services.alerting.domain.sla import DEFAULT_POLICY, SlaPolicy

DEFAULT_ROOT_CAUSES: tuple[str, ...] = (
    "Delivery",
    "Product quality",
    "Price",
    "Customer service",
    "Website or app",
    "Other",
)

#: The recovery survey goes this long after a case is resolved, unless the tenant says otherwise.
DEFAULT_RECOVERY_DAYS = 14


@dataclass(frozen=True, slots=True)
class DeskPolicy:
    sla: SlaPolicy = DEFAULT_POLICY
    root_causes: tuple[str, ...] = DEFAULT_ROOT_CAUSES
    #: Days after resolution the customer is asked the NPS question again; ``None``: never.
    recovery_days: int | None = DEFAULT_RECOVERY_DAYS
    #: Who takes a case no rule places (then the tenant's owner email, then nobody).
    fallback: Target | None = None
    #: Who hears of the second escalation; empty: the tenant's active CX managers.
    cx_manager_emails: tuple[str, ...] = ()
    #: The local hour (in the SLA's time zone) of the daily digest; ``None``: no digest.
    digest_hour: int | None = 8
    extra: dict[str, object] = field(default_factory=dict)

    def recovery_after(self) -> timedelta | None:
        return None if self.recovery_days is None else timedelta(days=self.recovery_days)


DEFAULT_DESK_POLICY = DeskPolicy()
