"""The touchpoint configuration a tenant writes (API and CLI), validated, and turned into rules."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.common.events import PURCHASE_COMPLETED, TICKET_CLOSED
from services.trigger.domain.cohorts import RELATIONSHIP_DUE
from services.trigger.domain.touchpoints import WEEKDAYS, Filter, SendWindow, TouchpointRule

SurveyedEventType = Literal["purchase.completed.v1", "ticket.closed.v1"]
assert {PURCHASE_COMPLETED, TICKET_CLOSED} == set(SurveyedEventType.__args__)  # type: ignore[attr-defined]


class FilterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(
        pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$",
        max_length=200,
        description="a dotted path into the event's data, e.g. `status`",
    )
    op: Literal["eq", "ne", "in", "not_in", "exists", "missing"]
    value: Any = None

    @model_validator(mode="after")
    def _value_fits(self) -> FilterConfig:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs a list value")
        if self.op in ("eq", "ne") and (self.value is None or isinstance(self.value, list | dict)):
            raise ValueError(f"op {self.op} needs a single value")
        return self


class SendWindowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: time = Field(description="local time, e.g. 08:00")
    end: time = Field(description="local time, e.g. 20:00; after start")
    time_zone: str = Field(default="UTC", description="used when the customer's time zone is unknown")

    @model_validator(mode="after")
    def _sane(self) -> SendWindowConfig:
        if self.start >= self.end:
            raise ValueError("send_window.start must be before send_window.end")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.time_zone!r}") from None
        return self


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: float | None = Field(default=None, gt=0, le=100, description="ask this share of customers")
    cycle: Literal["week", "month", "quarter"] = "month"
    accounts_per_period: int | None = Field(default=None, ge=1, le=100_000)
    period: Literal["week", "month", "quarter"] = "month"

    @model_validator(mode="after")
    def _one_kind(self) -> SampleConfig:
        if (self.percent is None) == (self.accounts_per_period is None):
            raise ValueError("sample needs exactly one of percent or accounts_per_period")
        return self


class TouchpointConfig(BaseModel):
    """One touchpoint. Every change is stored as a new version; decisions name the version."""

    model_config = ConfigDict(extra="forbid")
    event_types: list[SurveyedEventType] = Field(
        default_factory=list, description="required unless the touchpoint samples accounts on a schedule"
    )
    filters: list[FilterConfig] = Field(default_factory=list, max_length=20)
    include_test_events: bool = False
    template: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    channel: Literal["email"] = "email"
    delay_minutes: int = Field(default=0, ge=0, le=60 * 24 * 90)
    send_window: SendWindowConfig | None = None
    rest_period_days: int | None = Field(default=None, ge=0, le=3650)
    sample: SampleConfig | None = None
    daily_quota: int | None = Field(default=None, ge=1, le=10_000_000)
    priority: int = Field(default=100, ge=0, le=10_000, description="lower is tried first")

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _reacts_to_something(self) -> TouchpointConfig:
        if not self.event_types and not (self.sample and self.sample.accounts_per_period):
            raise ValueError(
                "event_types: at least one, unless sample.accounts_per_period schedules the touchpoint"
            )
        return self

    def to_rule(self, name: str, version: int) -> TouchpointRule:
        window = self.send_window
        sample = self.sample
        event_types: set[str] = set(self.event_types)
        filters = [Filter(f.field, f.op, f.value) for f in self.filters]
        if sample and sample.accounts_per_period:
            # The cohort scheduler's own events; each names the touchpoint it is for.
            event_types.add(RELATIONSHIP_DUE)
        return TouchpointRule(
            name=name,
            version=version,
            event_types=frozenset(event_types),
            filters=tuple(filters),
            delay=timedelta(minutes=self.delay_minutes),
            send_window=SendWindow(
                frozenset(WEEKDAYS.index(d) for d in window.days), window.start, window.end, window.time_zone
            )
            if window
            else None,
            rest_period=timedelta(days=self.rest_period_days) if self.rest_period_days is not None else None,
            sample_percent=sample.percent if sample else None,
            sample_cycle=(sample.period if sample.accounts_per_period else sample.cycle)
            if sample
            else "month",
            accounts_per_period=sample.accounts_per_period if sample else None,
            daily_quota=self.daily_quota,
            include_test_events=self.include_test_events,
            template=self.template,
            channel=self.channel,
            priority=self.priority,
        )


TOUCHPOINT_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


def rule_from_stored(name: str, version: int, config: dict[str, Any]) -> TouchpointRule:
    return TouchpointConfig.model_validate(config).to_rule(name, version)
