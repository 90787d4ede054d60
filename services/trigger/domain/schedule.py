"""When an invitation goes out: after the touchpoint's delay, inside its send window, in the
customer's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.trigger.domain.touchpoints import SendWindow


@lru_cache(maxsize=512)
def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_send_time(earliest: datetime, window: SendWindow | None, time_zone: str | None) -> datetime:
    """The first instant at or after ``earliest`` that lies inside the window (UTC)."""
    if window is None or not window.days:
        return earliest
    local_zone = zone(time_zone, window.time_zone)
    local = earliest.astimezone(local_zone)
    for day in range(8):
        date = (local + timedelta(days=day)).date()
        if date.weekday() not in window.days:
            continue
        opens = datetime.combine(date, window.start, tzinfo=local_zone)
        closes = datetime.combine(date, window.end, tzinfo=local_zone)
        if day == 0 and opens <= local < closes:
            return earliest
        if day == 0 and local >= closes:
            continue
        if day > 0 or local < opens:
            return opens.astimezone(UTC)
    return earliest
