"""Percent sampling that is stable per customer: the same customer is in or out for the whole of
a cycle, whatever the order or number of their events, and is drawn afresh the next cycle."""

from __future__ import annotations

import hashlib
from datetime import datetime

from services.trigger.domain.touchpoints import Cycle


def cycle_of(moment: datetime, cycle: Cycle) -> str:
    if cycle == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if cycle == "quarter":
        return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"
    return f"{moment.year}-{moment.month:02d}"


def sampled_in(tenant_id: str, touchpoint: str, customer_id: str, cycle: str, percent: float) -> bool:
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{tenant_id}\x1f{touchpoint}\x1f{customer_id}\x1f{cycle}".encode()).digest()
    # 64 bits of the hash as a uniform number in [0, 100).
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent
