"""``nps user`` and ``nps team``: the people of the case desk, from a shell.

    nps user add TENANT EMAIL --name NAME [--role agent|team_lead|cx_manager|admin]
    nps user list TENANT
    nps user deactivate TENANT EMAIL     (their sessions end at once)
    nps team create TENANT NAME [--lead EMAIL]
    nps team add-member TENANT TEAM EMAIL
    nps team list TENANT

The ``nps`` entry point (:mod:`services.trigger.cli`) hands these groups here. They write to
alerting's tables through the same handlers as the people API; TENANT is a name or id of
alerting's copy of the tenant registry. Events (``session.ended``) wait in alerting's outbox for
its relay.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from libs.common.db import Database, UnitOfWork, service_source
from libs.common.migrations import upgrade
from services.alerting.domain.people import Role, looks_like_email, normalise_email
from services.alerting.models import COMMON, User
from services.alerting.repository import AlertingRepository, TenantRef

#: The ``nps`` command groups this module runs.
GROUPS = ("user", "team")
MIGRATIONS = Path(__file__).parent / "migrations"

Uow = UnitOfWork[AlertingRepository]


class CliError(Exception):
    """A problem to print as one ``error:`` line, exiting 1."""


def add_parsers(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``user`` and ``team`` to the ``nps`` parser's command groups."""
    user = groups.add_parser("user", help="people of the case desk").add_subparsers(
        dest="command", required=True
    )
    add = user.add_parser("add", help="add a person who may sign in")
    add.add_argument("tenant", help="tenant name or id")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=[role.value for role in Role], default=Role.AGENT.value)
    user.add_parser("list", help="the tenant's people").add_argument("tenant")
    deactivate = user.add_parser("deactivate", help="stop a person signing in; ends their sessions")
    deactivate.add_argument("tenant")
    deactivate.add_argument("email")

    team = groups.add_parser("team", help="teams of the case desk").add_subparsers(
        dest="command", required=True
    )
    create = team.add_parser("create", help="create a team")
    create.add_argument("tenant")
    create.add_argument("name")
    create.add_argument("--lead", metavar="EMAIL", help="the team lead, a user of the tenant")
    member = team.add_parser("add-member", help="add a user to a team")
    member.add_argument("tenant")
    member.add_argument("team", help="team name")
    member.add_argument("email")
    team.add_parser("list", help="the tenant's teams and members").add_argument("tenant")


def run(args: argparse.Namespace, database_url: str) -> int:
    """Run a ``user`` or ``team`` command against alerting's tables (migrated first)."""
    upgrade(MIGRATIONS, database_url)
    return asyncio.run(_run(args, database_url))


async def _run(args: argparse.Namespace, database_url: str) -> int:
    database = Database(
        database_url,
        COMMON,
        pool_size=1,
        application_name="nps-cli",
        source=service_source("alerting"),
        repository=AlertingRepository,
    )
    try:
        async with database.uow() as uow:
            tenant = await uow.repository.tenant_by_name_or_id(args.tenant)
            if tenant is None:
                raise CliError(f"no tenant {args.tenant!r} (alerting hears of new tenants from the trigger)")
            if args.group == "user":
                await _user_command(uow, tenant, args, datetime.now(UTC))
            else:
                await _team_command(uow, tenant, args, datetime.now(UTC))
            await uow.commit()
        return 0
    except CliError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    finally:
        await database.dispose()


async def _user_by_email(uow: Uow, tenant: TenantRef, email: str) -> User:
    user = await uow.repository.user_by_email(tenant.id, normalise_email(email))
    if user is None:
        raise CliError(f"no user {normalise_email(email)} in tenant {tenant.name}")
    return user


async def _user_command(uow: Uow, tenant: TenantRef, args: argparse.Namespace, now: datetime) -> None:
    # Imported here, not above: every `nps` command imports this module for its parsers, and the
    # handlers package brings all of alerting's handlers with it.
    from services.alerting.handlers import people

    if args.command == "add":
        if not looks_like_email(normalise_email(args.email)):
            raise CliError(f"{args.email!r} is not an email address")
        if not args.name.strip() or len(args.name.strip()) > 200:
            raise CliError("--name must have 1 to 200 characters")
        try:
            user = await people.create_user(
                uow, tenant_id=tenant.id, email=args.email, name=args.name, role=Role(args.role), now=now
            )
        except people.UserExists as error:
            raise CliError(str(error)) from None
        print(f"added {user.email} ({user.id}) as {user.role} to {tenant.name}")
    elif args.command == "list":
        for user in await _all_users(uow, tenant):
            state = "active" if user.active else "inactive"
            print(f"{user.id}  {user.email}  {user.name}  {user.role}  {state}")
    elif args.command == "deactivate":
        user = await _user_by_email(uow, tenant, args.email)
        await people.update_user(uow, tenant_id=tenant.id, user_id=user.id, now=now, active=False)
        print(f"deactivated {user.email}; their sessions have ended")


async def _all_users(uow: Uow, tenant: TenantRef) -> list[User]:
    found: list[User] = []
    while True:
        page = await uow.repository.list_users(tenant.id, after=found[-1].id if found else None, limit=500)
        found.extend(page)
        if len(page) < 500:
            return found


async def _team_command(uow: Uow, tenant: TenantRef, args: argparse.Namespace, now: datetime) -> None:
    from services.alerting.handlers import people  # see _user_command

    if args.command == "create":
        name = args.name.strip()
        if not name or len(name) > 100:
            raise CliError("a team name has 1 to 100 characters")
        lead = await _user_by_email(uow, tenant, args.lead) if args.lead else None
        try:
            team = await people.create_team(
                uow, tenant_id=tenant.id, name=name, lead_user_id=lead.id if lead else None, now=now
            )
        except people.TeamExists as error:
            raise CliError(str(error)) from None
        print(f"created team {team.name} ({team.id}) in {tenant.name}")
    elif args.command == "add-member":
        found = await uow.repository.team_by_name(tenant.id, args.team.strip())
        if found is None:
            raise CliError(f"no team {args.team!r} in tenant {tenant.name}")
        user = await _user_by_email(uow, tenant, args.email)
        added = await people.add_member(uow, tenant_id=tenant.id, team_id=found.id, user_id=user.id, now=now)
        print(f"{user.email} {'joined' if added else 'is already in'} {found.name}")
    elif args.command == "list":
        await _list_teams(uow, tenant)


async def _list_teams(uow: Uow, tenant: TenantRef) -> None:
    teams = await uow.repository.list_teams(tenant.id, after=None, limit=1000)
    members = await uow.repository.team_members([team.id for team in teams])
    emails = {user.id: user.email for user in await _all_users(uow, tenant)}
    for team in teams:
        lead = emails.get(team.lead_user_id, "-") if team.lead_user_id else "-"
        listed = ", ".join(emails.get(member, str(member)) for member in members[team.id]) or "-"
        print(f"{team.id}  {team.name}  lead: {lead}  members: {listed}")
