"""Case routing: who a detractor's follow-up case goes to, and the reason a CX manager reads on it.

A tenant orders its rules; the first enabled rule whose conditions hold and whose target can take
the case wins. A rule that matches but cannot take the case (its user is inactive, its team has
nobody active, the account has no owner) is passed over, and the reason says so. After the rules
come the tenant's fallback, then its legacy owner email, then nobody. The caller passes in
everything (rules, people, teams, open case counts); nothing here reads a clock or a database,
and nothing is random, so the same inputs always route the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Strategy = Literal["round_robin", "least_loaded"]

#: Scores up to this one are urgent; above it, up to the last detractor score, normal.
URGENT_MAX_SCORE = 4
DETRACTOR_MAX_SCORE = 6


class ScoreBand(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


def band_of(score: int) -> ScoreBand:
    """0-4 is urgent, 5-6 normal; only a detractor's answer opens a case, so nothing else is routed."""
    if not 0 <= score <= DETRACTOR_MAX_SCORE:
        raise ValueError(f"only a detractor's score (0-{DETRACTOR_MAX_SCORE}) is routed, not {score}")
    return ScoreBand.URGENT if score <= URGENT_MAX_SCORE else ScoreBand.NORMAL


def _normalised(value: str) -> str:
    return value.strip().casefold()


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What is known about the case when it is routed."""

    touchpoint: str
    score: int
    #: Customer attributes carried on the events (country, store, product_category, ...).
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: The account's owner, from customer.upserted.
    account_owner_email: str | None = None

    def __post_init__(self) -> None:
        band_of(self.score)

    @property
    def owner_email(self) -> str | None:
        """The account owner's email, or None when there is none (a blank one counts as none)."""
        email = (self.account_owner_email or "").strip()
        return email or None


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a rule asks of a case. Every given condition must hold; no conditions match every case."""

    #: None: any touchpoint.
    touchpoints: frozenset[str] | None = None
    #: None: any score.
    bands: frozenset[ScoreBand] | None = None
    #: Each named attribute must have one of its values, compared case-insensitively after stripping
    #: spaces; a case without the attribute does not match.
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Only cases whose account has an owner.
    account_owner: bool = False

    def explain(self, facts: CaseFacts) -> str | None:
        """Why the case matches, as the reason reads it (``touchpoint is webshop, score 3 is urgent``),
        or None when it does not."""
        clauses: list[str] = []
        if self.touchpoints is not None:
            if facts.touchpoint not in self.touchpoints:
                return None
            clauses.append(f"touchpoint is {facts.touchpoint}")
        if self.bands is not None:
            band = band_of(facts.score)
            if band not in self.bands:
                return None
            clauses.append(f"score {facts.score} is {band}")
        for name, allowed in self.attributes.items():
            value = facts.attributes.get(name)
            if value is None or _normalised(value) not in {_normalised(v) for v in allowed}:
                return None
            clauses.append(f"{name} is {value.strip()}")
        if self.account_owner:
            if facts.owner_email is None:
                return None
            clauses.append("the account has an owner")
        return ", ".join(clauses) or "any case"

    def matches(self, facts: CaseFacts) -> bool:
        return self.explain(facts) is not None


class TargetKind(StrEnum):
    USER = "user"
    TEAM = "team"
    ACCOUNT_OWNER = "account_owner"


_TARGET_TAKES: Mapping[TargetKind, str] = {
    TargetKind.USER: "a user_id only",
    TargetKind.TEAM: "a team_id and optionally a strategy",
    TargetKind.ACCOUNT_OWNER: "neither a user_id, a team_id nor a strategy",
}


@dataclass(frozen=True)
class Target:
    """Who a rule (or the fallback) gives the case to. A team without a strategy takes turns."""

    kind: TargetKind
    user_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    strategy: Strategy | None = None

    def __post_init__(self) -> None:
        if self.kind is TargetKind.USER:
            consistent = self.user_id is not None and self.team_id is None and self.strategy is None
        elif self.kind is TargetKind.TEAM:
            consistent = self.team_id is not None and self.user_id is None
        else:
            consistent = self.user_id is None and self.team_id is None and self.strategy is None
        if not consistent:
            raise ValueError(f"a {self.kind.value} target takes {_TARGET_TAKES[self.kind]}")

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Target:
        return cls(TargetKind.USER, user_id=user_id)

    @classmethod
    def team(cls, team_id: uuid.UUID, strategy: Strategy = "round_robin") -> Target:
        return cls(TargetKind.TEAM, team_id=team_id, strategy=strategy)

    @classmethod
    def account_owner(cls) -> Target:
        return cls(TargetKind.ACCOUNT_OWNER)


@dataclass(frozen=True)
class Rule:
    id: uuid.UUID
    name: str
    #: Rules are tried in this order (lowest first); rules of equal position keep the order given.
    position: int
    conditions: Conditions
    target: Target
    enabled: bool = True


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    email: str
    active: bool


@dataclass(frozen=True)
class Team:
    id: uuid.UUID
    name: str
    #: In a stable order: turns and ties follow it.
    members: tuple[Member, ...]
    #: Where the next round-robin turn starts looking (an index into members, taken modulo their
    #: number, so a team that lost members still works).
    cursor: int = 0


@dataclass(frozen=True)
class Directory:
    """The tenant's people and teams as the caller loaded them."""

    users: Mapping[uuid.UUID, Member]
    teams: Mapping[uuid.UUID, Team]
    #: Keyed by the lower-cased email.
    users_by_email: Mapping[str, Member]
    #: Open cases per user, for least-loaded teams; a user not listed has none.
    open_cases: Mapping[uuid.UUID, int] = field(default_factory=dict)
    fallback: Target | None = None
    #: The tenant's legacy owner email: the last resort.
    owner_email: str | None = None

    @classmethod
    def of(
        cls,
        users: Iterable[Member],
        teams: Iterable[Team] = (),
        *,
        open_cases: Mapping[uuid.UUID, int] | None = None,
        fallback: Target | None = None,
        owner_email: str | None = None,
    ) -> Directory:
        """A directory from its users and teams, with the lookups built."""
        people = list(users)
        return cls(
            users={member.user_id: member for member in people},
            teams={team.id: team for team in teams},
            users_by_email={member.email.strip().lower(): member for member in people},
            open_cases=dict(open_cases or {}),
            fallback=fallback,
            owner_email=owner_email,
        )


@dataclass(frozen=True)
class Routed:
    """Where the case went, and why."""

    rule_id: uuid.UUID | None
    rule_name: str | None
    #: Shown to the CX manager on the case.
    reason: str
    assignee_user_id: uuid.UUID | None
    team_id: uuid.UUID | None
    #: Who is emailed: the assignee, or an account owner who is not a user, or the tenant's owner email.
    notify_email: str | None
    #: The team whose round-robin cursor advanced, and its new value, for the caller to store.
    team_cursor: tuple[uuid.UUID, int] | None


@dataclass(frozen=True, slots=True)
class _Taken:
    assignee: Member | None
    notify_email: str | None
    team_id: uuid.UUID | None
    team_cursor: tuple[uuid.UUID, int] | None
    #: How the reason ends: ``team Support DK (round robin)``.
    described: str


@dataclass(frozen=True, slots=True)
class _Refused:
    #: Why the target cannot take the case: ``team Support DK has no active member``.
    why: str


def _current(member: Member, directory: Directory) -> Member:
    """The directory's own record of a person wins over a copy held elsewhere (a team's list)."""
    return directory.users.get(member.user_id, member)


def _take_user(user_id: uuid.UUID, directory: Directory) -> _Taken | _Refused:
    member = directory.users.get(user_id)
    if member is None:
        return _Refused(f"user {user_id} is unknown")
    if not member.active:
        return _Refused(f"user {member.email} is inactive")
    return _Taken(member, member.email, None, None, f"user {member.email}")


def _take_team(team_id: uuid.UUID, strategy: Strategy, directory: Directory) -> _Taken | _Refused:
    team = directory.teams.get(team_id)
    if team is None:
        return _Refused(f"team {team_id} is unknown")
    active = [
        (index, _current(member, directory))
        for index, member in enumerate(team.members)
        if _current(member, directory).active
    ]
    if not active:
        return _Refused(f"team {team.name} has no active member")
    cursor: tuple[uuid.UUID, int] | None = None
    if strategy == "least_loaded":
        _, member = min(active, key=lambda pair: (directory.open_cases.get(pair[1].user_id, 0), pair[0]))
    else:
        size = len(team.members)
        start = team.cursor % size
        index, member = min(active, key=lambda pair: (pair[0] - start) % size)
        cursor = (team.id, (index + 1) % size)
    label = strategy.replace("_", " ")
    return _Taken(member, member.email, team.id, cursor, f"team {team.name} ({label})")


def _take_account_owner(facts: CaseFacts, directory: Directory) -> _Taken | _Refused:
    email = facts.owner_email
    if email is None:
        return _Refused("the account has no owner")
    member = directory.users_by_email.get(email.lower())
    if member is not None and _current(member, directory).active:
        member = _current(member, directory)
        return _Taken(member, member.email, None, None, f"account owner {member.email}")
    described = f"account owner {email}, who is not an active user: emailed, not assigned"
    return _Taken(None, email, None, None, described)


def _take(target: Target, facts: CaseFacts, directory: Directory) -> _Taken | _Refused:
    if target.kind is TargetKind.USER and target.user_id is not None:
        return _take_user(target.user_id, directory)
    if target.kind is TargetKind.TEAM and target.team_id is not None:
        return _take_team(target.team_id, target.strategy or "round_robin", directory)
    return _take_account_owner(facts, directory)


def can_take(target: Target, facts: CaseFacts, directory: Directory) -> bool:
    """Whether the target can take this case: an active user, a team with someone active, an owner."""
    return isinstance(_take(target, facts, directory), _Taken)


def _routed(taken: _Taken, reasons: Sequence[str], rule: Rule | None) -> Routed:
    return Routed(
        rule_id=rule.id if rule else None,
        rule_name=rule.name if rule else None,
        reason="; ".join(reasons),
        assignee_user_id=taken.assignee.user_id if taken.assignee else None,
        team_id=taken.team_id,
        notify_email=taken.notify_email,
        team_cursor=taken.team_cursor,
    )


def _unrouted(reasons: Sequence[str], notify_email: str | None) -> Routed:
    return Routed(None, None, "; ".join(reasons), None, None, notify_email, None)


def route(facts: CaseFacts, rules: Sequence[Rule], directory: Directory) -> Routed:
    """The first enabled rule (by position) whose conditions hold and whose target can take the case;
    else the fallback; else the tenant's owner email; else nobody. The reason tells which and why."""
    passed_over: list[str] = []
    for rule in sorted((rule for rule in rules if rule.enabled), key=lambda rule: rule.position):
        why = rule.conditions.explain(facts)
        if why is None:
            continue
        label = f'rule {rule.position} "{rule.name}"'
        taken = _take(rule.target, facts, directory)
        if isinstance(taken, _Refused):
            passed_over.append(f"{label} matched but {taken.why}")
            continue
        return _routed(taken, [*passed_over, f"{label}: {why} -> {taken.described}"], rule)
    return _after_the_rules(facts, directory, passed_over)


def _after_the_rules(facts: CaseFacts, directory: Directory, passed_over: list[str]) -> Routed:
    no_rule = "no other rule matched" if passed_over else "no rule matched"
    if directory.fallback is None:
        fallback = "no fallback"
    else:
        taken = _take(directory.fallback, facts, directory)
        if isinstance(taken, _Taken):
            return _routed(taken, [*passed_over, f"{no_rule} -> fallback {taken.described}"], None)
        fallback = f"the fallback cannot take it ({taken.why})"
    owner_email = (directory.owner_email or "").strip()
    if owner_email:
        return _unrouted([*passed_over, f"{no_rule} and {fallback} -> the tenant's owner email"], owner_email)
    return _unrouted([*passed_over, f"{no_rule}, {fallback} and no owner email -> unassigned"], None)
