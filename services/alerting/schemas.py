"""The case routing rules a tenant writes over the REST API, validated, and turned into the domain's
rules (``services/alerting/domain/routing.py``); and the same rules as the API shows them back.

One rule reads::

    {"name": "Urgent webshop DK",
     "when": {"touchpoints": ["webshop"], "bands": ["urgent"], "attributes": {"country": ["DK"]}},
     "then": {"team": "6f1c...", "strategy": "round_robin"},
     "enabled": true}

Every object refuses keys it does not know, so a misspelt condition is an error rather than a rule
that silently matches more than meant.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StringConstraints,
    Tag,
    model_validator,
)

from services.alerting.domain.business_hours import BusinessHours
from services.alerting.domain.policy import DEFAULT_RECOVERY_DAYS, DEFAULT_ROOT_CAUSES, DeskPolicy
from services.alerting.domain.routing import Conditions, Rule, ScoreBand, Strategy, Target, TargetKind
from services.alerting.domain.sla import Priority, SlaPolicy, Targets

MAX_RULES = 200
MAX_ATTRIBUTES = 20
MAX_ATTRIBUTE_VALUES = 50
MAX_TOUCHPOINTS = 100

TOUCHPOINT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
ATTRIBUTE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


def _printable(value: str) -> str:
    """Postgres cannot store NUL in text, and a control character in a name shown to a CX manager
    is a mistake or an attack; either way it is refused, naming the character."""
    for char in value:
        if char == "\x00":
            raise ValueError("must not contain the NUL character (\\u0000)")
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


RuleName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_printable)
]
TouchpointName = Annotated[str, StringConstraints(pattern=TOUCHPOINT_PATTERN)]
AttributeName = Annotated[str, StringConstraints(pattern=ATTRIBUTE_PATTERN)]
AttributeValue = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_printable)
]
AttributeValues = Annotated[list[AttributeValue], Field(min_length=1, max_length=MAX_ATTRIBUTE_VALUES)]
BandName = Literal["urgent", "normal"]


class WhenIn(BaseModel):
    """What a case must have for the rule to apply. Every condition given must hold; `{}` matches
    every case."""

    model_config = ConfigDict(extra="forbid")
    touchpoints: list[TouchpointName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TOUCHPOINTS,
        description='the case\'s touchpoint is one of these, e.g. `["webshop"]`; left out: any touchpoint',
    )
    bands: list[BandName] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="the score's band: `urgent` is 0-4, `normal` is 5-6; left out: any detractor score",
    )
    attributes: dict[AttributeName, AttributeValues] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description=(
            "customer attributes carried on the events, each with the values it may have, e.g. "
            '`{"country": ["DK", "SE"]}`; values are compared ignoring case and surrounding spaces, '
            f"and a customer without the attribute does not match. At most {MAX_ATTRIBUTES} "
            f"attributes of 1-{MAX_ATTRIBUTE_VALUES} values each"
        ),
    )
    account_owner: bool = Field(
        default=False, description="`true`: only customers whose account has an owner"
    )

    def to_conditions(self) -> Conditions:
        return Conditions(
            touchpoints=frozenset(self.touchpoints) if self.touchpoints is not None else None,
            bands=frozenset(ScoreBand(band) for band in self.bands) if self.bands is not None else None,
            attributes={name: frozenset(values) for name, values in self.attributes.items()},
            account_owner=self.account_owner,
        )

    @classmethod
    def of(cls, conditions: Conditions) -> WhenIn:
        bands = conditions.bands
        return cls(
            touchpoints=sorted(conditions.touchpoints) if conditions.touchpoints is not None else None,
            bands=[band.value for band in ScoreBand if band in bands] if bands is not None else None,
            attributes={name: sorted(values) for name, values in conditions.attributes.items()},
            account_owner=conditions.account_owner,
        )


class UserTargetIn(BaseModel):
    """The case goes to this user."""

    model_config = ConfigDict(extra="forbid")
    user: uuid.UUID = Field(description="the user's id")


class TeamTargetIn(BaseModel):
    """The case goes to an active member of this team."""

    model_config = ConfigDict(extra="forbid")
    team: uuid.UUID = Field(description="the team's id")
    strategy: Strategy = Field(
        default="round_robin",
        description="`round_robin`: members take turns; `least_loaded`: the member with the fewest open "
        "cases (ties go to the first in the team's order). Inactive members are skipped",
    )


class AccountOwnerTargetIn(BaseModel):
    """The case goes to the customer's account owner: assigned if they are an active user, otherwise
    only emailed."""

    model_config = ConfigDict(extra="forbid")
    account_owner: Literal[True] = Field(description="always `true`")


AnyTargetIn = UserTargetIn | TeamTargetIn | AccountOwnerTargetIn


def _tag_of(value: Any, tags: tuple[str, ...]) -> str | None:
    """Which kind of target an input is: exactly one of the tags among its keys, or None (refused)."""
    if isinstance(value, UserTargetIn | TeamTargetIn | AccountOwnerTargetIn):
        keys = set(type(value).model_fields)
    elif isinstance(value, dict):
        keys = set(value)
    else:
        return None
    present = [tag for tag in tags if tag in keys]
    return present[0] if len(present) == 1 else None


def _rule_target_tag(value: Any) -> str | None:
    return _tag_of(value, ("user", "team", "account_owner"))


def _fallback_tag(value: Any) -> str | None:
    return _tag_of(value, ("user", "team"))


ThenIn = Annotated[
    Annotated[UserTargetIn, Tag("user")]
    | Annotated[TeamTargetIn, Tag("team")]
    | Annotated[AccountOwnerTargetIn, Tag("account_owner")],
    Discriminator(
        _rule_target_tag,
        custom_error_type="routing_target",
        custom_error_message='then must be exactly one of {"user": id}, {"team": id, "strategy": ...} '
        'or {"account_owner": true}',
    ),
]
FallbackTargetIn = Annotated[
    Annotated[UserTargetIn, Tag("user")] | Annotated[TeamTargetIn, Tag("team")],
    Discriminator(
        _fallback_tag,
        custom_error_type="routing_fallback",
        custom_error_message='the fallback must be exactly one of {"user": id} or '
        '{"team": id, "strategy": ...}, or null',
    ),
]


def _to_target(then: AnyTargetIn) -> Target:
    if isinstance(then, UserTargetIn):
        return Target.user(then.user)
    if isinstance(then, TeamTargetIn):
        return Target.team(then.team, then.strategy)
    return Target.account_owner()


def _then_of(target: Target) -> AnyTargetIn:
    if target.kind is TargetKind.USER and target.user_id is not None:
        return UserTargetIn(user=target.user_id)
    if target.kind is TargetKind.TEAM and target.team_id is not None:
        return TeamTargetIn(team=target.team_id, strategy=target.strategy or "round_robin")
    return AccountOwnerTargetIn(account_owner=True)


class RoutingRuleIn(BaseModel):
    """One routing rule: when a case has all of `when`, it goes to `then`."""

    model_config = ConfigDict(extra="forbid")
    name: RuleName = Field(description="1-100 characters, unique among the tenant's rules; shown on cases")
    when: WhenIn = Field(default_factory=WhenIn, description="the conditions; `{}` or left out: every case")
    then: ThenIn = Field(
        description='who takes the case: `{"user": id}`, `{"team": id, "strategy": "round_robin" | '
        '"least_loaded"}` or `{"account_owner": true}`. A rule whose target cannot take the case (an '
        "inactive user, a team with nobody active, no account owner) is passed over, and the case says why"
    )
    enabled: bool = Field(default=True, description="`false`: the rule is kept but not used")

    def to_rule(self, rule_id: uuid.UUID, position: int) -> Rule:
        return Rule(
            id=rule_id,
            name=self.name,
            position=position,
            conditions=self.when.to_conditions(),
            target=_to_target(self.then),
            enabled=self.enabled,
        )


class RoutingRulesIn(BaseModel):
    """All of a tenant's routing rules, in the order they are tried: the first that matches and can
    take the case wins; when none does, the fallback takes it."""

    model_config = ConfigDict(extra="forbid")
    rules: list[RoutingRuleIn] = Field(
        max_length=MAX_RULES, description=f"at most {MAX_RULES}, first tried first; names unique"
    )

    @model_validator(mode="after")
    def _names_unique(self) -> RoutingRulesIn:
        seen: dict[str, int] = {}
        for number, rule in enumerate(self.rules, start=1):
            key = rule.name.casefold()
            if key in seen:
                raise ValueError(
                    f"rule names must be unique: {rule.name!r} is the name of rules {seen[key]} and {number}"
                )
            seen[key] = number
        return self


def to_rules(rules_in: RoutingRulesIn, ids: Sequence[uuid.UUID]) -> list[Rule]:
    """The domain's rules, positions 1..n in the order given, each with its id from ``ids``."""
    if len(ids) != len(rules_in.rules):
        raise ValueError(f"{len(rules_in.rules)} rules need as many ids, not {len(ids)}")
    return [
        rule.to_rule(rule_id, position)
        for position, (rule, rule_id) in enumerate(zip(rules_in.rules, ids, strict=True), start=1)
    ]


class RoutingRuleView(RoutingRuleIn):
    """A stored routing rule: what was sent, with its id and its place in the order."""

    id: uuid.UUID = Field(description="the rule's id")
    position: int = Field(description="its place in the order, from 1: lower is tried first")

    @classmethod
    def of(cls, rule: Rule) -> RoutingRuleView:
        return cls(
            id=rule.id,
            position=rule.position,
            name=rule.name,
            when=WhenIn.of(rule.conditions),
            then=_then_of(rule.target),
            enabled=rule.enabled,
        )


class FallbackIn(RootModel[FallbackTargetIn | None]):
    """Who takes a case that no rule routes: `{"user": id}`, `{"team": id, "strategy": ...}`, or
    `null` for none (the tenant's owner email is then emailed, if it has one)."""

    root: FallbackTargetIn | None = Field(
        description='`{"user": id}`, `{"team": id, "strategy": "round_robin" | "least_loaded"}` or `null`'
    )

    def to_target(self) -> Target | None:
        return _to_target(self.root) if self.root is not None else None

    @classmethod
    def of(cls, target: Target | None) -> FallbackIn:
        if target is not None and target.kind is TargetKind.ACCOUNT_OWNER:
            raise ValueError("the fallback is a user or a team, not the account owner")
        return cls(_then_of(target) if target is not None else None)


# The tenant's desk settings: business hours, SLA, root causes, recovery survey, fallback, escalation.

DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_NAMES: tuple[DayName, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
RootCause = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_printable)
]


class BusinessHoursIn(BaseModel):
    """When the team works. SLA times count only these hours."""

    model_config = ConfigDict(extra="forbid")
    time_zone: str = Field(default="UTC", max_length=64, description="IANA name, e.g. `Europe/Copenhagen`")
    working_days: list[DayName] = Field(
        default_factory=lambda: list(DAY_NAMES[:5]), min_length=1, max_length=7
    )
    opens: LocalTime = Field(default="09:00", description="local time, `HH:MM`")
    closes: LocalTime = Field(default="17:00", description="local time, `HH:MM`; `00:00`-`00:00` is all day")
    holiday_country: str | None = Field(
        default=None,
        max_length=3,
        description="ISO 3166-1 code whose public holidays are days off, e.g. `DK`",
    )
    holiday_subdivision: str | None = Field(default=None, max_length=10, description="e.g. `BY` for Bavaria")

    def to_hours(self) -> BusinessHours:
        return BusinessHours(
            time_zone=self.time_zone,
            working_days=frozenset(DAY_NAMES.index(day) for day in self.working_days),
            opens=time.fromisoformat(self.opens),
            closes=time.fromisoformat(self.closes),
            holiday_country=self.holiday_country,
            holiday_subdivision=self.holiday_subdivision,
        )

    @classmethod
    def of(cls, hours: BusinessHours) -> BusinessHoursIn:
        return cls(
            time_zone=hours.time_zone,
            working_days=[DAY_NAMES[day] for day in sorted(hours.working_days)],
            opens=hours.opens.strftime("%H:%M"),
            closes=hours.closes.strftime("%H:%M"),
            holiday_country=hours.holiday_country,
            holiday_subdivision=hours.holiday_subdivision,
        )


class TargetsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_contact_hours: float = Field(gt=0, le=24 * 366, description="business hours to the first contact")
    resolution_hours: float = Field(gt=0, le=24 * 366, description="business hours to resolution")


class SlaIn(BaseModel):
    """Targets per priority (urgent: score 0-4, normal: 5-6), in business hours."""

    model_config = ConfigDict(extra="forbid")
    urgent: TargetsIn = Field(default_factory=lambda: TargetsIn(first_contact_hours=4, resolution_hours=16))
    normal: TargetsIn = Field(default_factory=lambda: TargetsIn(first_contact_hours=24, resolution_hours=40))
    reminder_percent: float = Field(
        default=75, gt=0, lt=100, description="the owner is reminded at this share of the first-contact time"
    )
    escalation_repeat_hours: float = Field(
        default=4,
        gt=0,
        le=24 * 31,
        description="business hours from the breach (team lead) to the CX manager",
    )


class DeskSettingsIn(BaseModel):
    """A tenant's case-desk settings; every part left out keeps the platform's default."""

    model_config = ConfigDict(extra="forbid")
    business_hours: BusinessHoursIn = Field(default_factory=BusinessHoursIn)
    sla: SlaIn = Field(default_factory=SlaIn)
    root_causes: list[RootCause] = Field(
        default_factory=lambda: list(DEFAULT_ROOT_CAUSES),
        min_length=1,
        max_length=50,
        description="what a case is resolved with; the recovery rate is reported per root cause",
    )
    recovery_days: int | None = Field(
        default=DEFAULT_RECOVERY_DAYS,
        ge=1,
        le=365,
        description="days after resolution the customer is asked the NPS question again; `null`: never",
    )
    fallback: FallbackTargetIn | None = Field(
        default=None, description='who takes a case no rule places: `{"user": id}` or `{"team": id, ...}`'
    )
    cx_manager_emails: list[
        Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    ] = Field(
        default_factory=list,
        max_length=20,
        description="who hears of the second escalation; empty: the tenant's active CX managers",
    )
    digest_hour: int | None = Field(
        default=8, ge=0, le=23, description="local hour of each person's daily digest; `null`: none"
    )

    @model_validator(mode="after")
    def _coherent(self) -> DeskSettingsIn:
        self.to_policy()  # business hours and targets check themselves, naming the problem
        return self

    def to_policy(self) -> DeskPolicy:
        sla = self.sla
        try:
            policy = SlaPolicy(
                targets={
                    Priority.URGENT: _targets(sla.urgent),
                    Priority.NORMAL: _targets(sla.normal),
                },
                reminder_fraction=sla.reminder_percent / 100,
                escalation_repeat=timedelta(hours=sla.escalation_repeat_hours),
                hours=self.business_hours.to_hours(),
            )
        except ValueError as error:
            raise ValueError(str(error)) from None
        return DeskPolicy(
            sla=policy,
            root_causes=tuple(dict.fromkeys(self.root_causes)),
            recovery_days=self.recovery_days,
            fallback=_to_target(self.fallback) if self.fallback is not None else None,
            cx_manager_emails=tuple(email.lower() for email in self.cx_manager_emails),
            digest_hour=self.digest_hour,
        )


def _targets(targets: TargetsIn) -> Targets:
    return Targets(
        first_contact=timedelta(hours=targets.first_contact_hours),
        resolution=timedelta(hours=targets.resolution_hours),
    )


def desk_policy(config: dict[str, object] | None) -> DeskPolicy:
    """The policy a stored settings document describes; the defaults when there is none."""
    return DeskSettingsIn.model_validate(config or {}).to_policy()
