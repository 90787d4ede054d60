"""Open follow-up cases put straight into ``alerting.followup_cases`` with asyncpg COPY, with the
people they belong to, for the benches that need many of them (``bench.alerting_sla``,
``bench.desk_list``).

Each tenant gets a small desk: a CX manager, a team lead and four agents in one team; its cases
are the team's, owned by the agents in turn. Half the cases are urgent (score 0-4), half normal
(5-6); each opened at some point in the last ``opened_within`` and carries the due times the
tenant's SLA gives it (the default policy: no desk settings are stored), no SLA step taken yet,
and a ``next_check_at`` in the last ``due_within``: every case is due for the SLA job now.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from libs.common.migrations import upgrade
from services import alerting
from services.alerting.domain.sla import DEFAULT_POLICY, clock, priority_of
from services.alerting.handlers.common import case_id_for

SCHEMA = "alerting"
MIGRATIONS = Path(alerting.__file__).parent / "migrations"
AGENTS_PER_TENANT = 4
CASE_COLUMNS = (
    "id",
    "tenant_id",
    "response_id",
    "invitation_id",
    "customer_id",
    "customer_email",
    "customer_name",
    "touchpoint",
    "score",
    "comment",
    "status",
    "owner_email",
    "opened_at",
    "due_at",
    "updated_at",
    "priority",
    "assignee_user_id",
    "assignee_name",
    "team_id",
    "team_name",
    "routing_reason",
    "resolution_due_at",
    "sla_done",
    "next_check_at",
)


@dataclass(frozen=True)
class Agent:
    user_id: uuid.UUID
    name: str
    email: str


@dataclass(frozen=True)
class Desk:
    """One tenant's people as the seeded cases name them."""

    tenant_id: uuid.UUID
    team_id: uuid.UUID
    team_name: str
    agents: tuple[Agent, ...]


async def migrate(database_url: str) -> None:
    """The alerting schema at head, by the service's own migrations (as ``python -m services.alerting``
    runs them at start-up)."""
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)


async def add_tenants(connection: asyncpg.Connection, tenant_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """The service's copy of these tenants, as ``tenant.created`` would have left it."""
    await connection.copy_records_to_table(
        "tenants",
        schema_name=SCHEMA,
        columns=["id", "name", "owner_email", "created_at"],
        records=[
            (tenant_id, f"bench-{tenant_id.hex[:8]}", f"owner@{tenant_id.hex[:8]}.example", now)
            for tenant_id in tenant_ids
        ],
    )


async def add_desks(
    connection: asyncpg.Connection, tenant_ids: Sequence[uuid.UUID], now: datetime
) -> list[Desk]:
    """Each tenant's CX manager, team lead and agents, and the team they are in."""
    users: list[tuple[object, ...]] = []
    teams: list[tuple[object, ...]] = []
    members: list[tuple[object, ...]] = []
    desks: list[Desk] = []
    for tenant_id in tenant_ids:
        domain = f"{tenant_id.hex[:8]}.example"
        manager, lead = uuid.uuid4(), uuid.uuid4()
        agents = tuple(
            Agent(uuid.uuid4(), f"Agent {number}", f"agent{number}@{domain}")
            for number in range(1, AGENTS_PER_TENANT + 1)
        )
        users.append((manager, tenant_id, f"cx@{domain}", "CX Manager", "cx_manager", now, now))
        users.append((lead, tenant_id, f"lead@{domain}", "Team Lead", "team_lead", now, now))
        users.extend((a.user_id, tenant_id, a.email, a.name, "agent", now, now) for a in agents)
        team = Desk(tenant_id, uuid.uuid4(), "Customer care", agents)
        teams.append((team.team_id, tenant_id, team.team_name, lead, now, now))
        members.extend((team.team_id, user, tenant_id, now) for user in (lead, *(a.user_id for a in agents)))
        desks.append(team)
    await connection.copy_records_to_table(
        "users",
        schema_name=SCHEMA,
        columns=["id", "tenant_id", "email", "name", "role", "created_at", "updated_at"],
        records=users,
    )
    await connection.copy_records_to_table(
        "teams",
        schema_name=SCHEMA,
        columns=["id", "tenant_id", "name", "lead_user_id", "created_at", "updated_at"],
        records=teams,
    )
    await connection.copy_records_to_table(
        "team_members",
        schema_name=SCHEMA,
        columns=["team_id", "user_id", "tenant_id", "joined_at"],
        records=members,
    )
    return desks


def _case(
    index: int, desk: Desk, now: datetime, rng: random.Random, opened: datetime, check: datetime
) -> tuple[object, ...]:
    score = rng.randint(0, 4) if index % 2 == 0 else rng.randint(5, 6)
    priority = priority_of(score)
    times = clock(opened, priority, DEFAULT_POLICY)
    agent = desk.agents[index % len(desk.agents)]
    response_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    customer = f"cust-{index}"
    return (
        case_id_for(response_id),
        desk.tenant_id,
        response_id,
        uuid.UUID(int=rng.getrandbits(128), version=4),
        customer,
        f"{customer}@shoppers.example",
        f"Customer {index}",
        "webshop-purchase",
        score,
        "The parcel came two weeks late." if score <= 4 else None,
        "open",
        agent.email,
        opened,
        times.first_contact_due,
        now,
        priority.value,
        agent.user_id,
        agent.name,
        desk.team_id,
        desk.team_name,
        "no rule matched: the tenant's fallback",
        times.resolution_due,
        [],
        check,
    )


async def add_cases(
    connection: asyncpg.Connection,
    desks: Sequence[Desk],
    count: int,
    now: datetime,
    *,
    opened_within: timedelta = timedelta(days=7),
    due_within: timedelta = timedelta(hours=1),
    seed: int = 7,
) -> None:
    """``count`` open cases spread evenly over the desks (tenants), COPY'd in chunks, then ANALYZE."""
    rng = random.Random(seed)
    chunk: list[tuple[object, ...]] = []
    for index in range(count):
        opened = now - opened_within * rng.random()
        check = now - due_within * rng.random()
        chunk.append(_case(index, desks[index % len(desks)], now, rng, opened, check))
        if len(chunk) == 20_000 or index == count - 1:
            await connection.copy_records_to_table(
                "followup_cases", schema_name=SCHEMA, columns=list(CASE_COLUMNS), records=chunk
            )
            chunk = []
    await connection.execute(f"ANALYZE {SCHEMA}.followup_cases")
