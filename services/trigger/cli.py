"""``nps``: manage tenants and API keys from a shell.

    nps tenant create NAME [--owner-email EMAIL] [--if-missing]
    nps tenant list
    nps apikey create TENANT          (prints the key once, on the last line)
    nps apikey revoke KEY_ID
    nps policy set TENANT --rest-period-days N

It writes to the trigger's database (``DATABASE_URL``) through the same handlers as the admin API;
the trigger's outbox relay then tells the other services.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from libs.common.db import Database
from libs.common.logs import configure_logging
from libs.common.migrations import upgrade
from services.trigger import handlers, repository
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from services.trigger.models import COMMON


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nps", description="Manage NPS platform tenants and API keys.")
    groups = parser.add_subparsers(dest="group", required=True)

    tenant = groups.add_parser("tenant", help="tenants").add_subparsers(dest="command", required=True)
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("name")
    create.add_argument("--owner-email", help="who receives follow-up cases by default")
    create.add_argument("--if-missing", action="store_true", help="succeed quietly if it exists already")
    tenant.add_parser("list", help="list tenants")

    apikey = groups.add_parser("apikey", help="API keys").add_subparsers(dest="command", required=True)
    key_create = apikey.add_parser("create", help="create an API key (shown once)")
    key_create.add_argument("tenant", help="tenant name or id")
    key_revoke = apikey.add_parser("revoke", help="revoke an API key")
    key_revoke.add_argument("key_id")

    policy = groups.add_parser("policy", help="a tenant's rules").add_subparsers(
        dest="command", required=True
    )
    policy_set = policy.add_parser("set", help="set the rest period")
    policy_set.add_argument("tenant")
    policy_set.add_argument("--rest-period-days", type=int, required=True)
    return parser


async def _run(args: argparse.Namespace, settings: TriggerSettings) -> int:
    database = Database(settings.database_url, COMMON, pool_size=1, application_name="nps-cli")
    now = datetime.now(UTC)
    try:
        async with database.uow() as uow:
            if (args.group, args.command) == ("tenant", "create"):
                try:
                    tenant_id = await handlers.create_tenant(
                        uow, name=args.name, owner_email=args.owner_email, now=now
                    )
                except handlers.TenantExists:
                    if args.if_missing:
                        print(f"tenant {args.name} exists already")
                        return 0
                    print(f"error: a tenant named {args.name!r} exists already", file=sys.stderr)
                    return 1
                await uow.commit()
                print(f"created tenant {args.name} ({tenant_id})")
            elif (args.group, args.command) == ("tenant", "list"):
                for row in await repository.list_tenants(uow.session):
                    print(f"{row.id}  {row.name}  {row.owner_email or '-'}")
            elif (args.group, args.command) == ("apikey", "create"):
                try:
                    tenant_id, key = await handlers.create_api_key(uow, tenant=args.tenant, now=now)
                except handlers.UnknownTenant:
                    print(f"error: no tenant {args.tenant!r}", file=sys.stderr)
                    return 1
                await uow.commit()
                print(f"API key {key.key_id} for tenant {tenant_id}; it is shown only now:")
                print(key.secret)
            elif (args.group, args.command) == ("apikey", "revoke"):
                if not await handlers.revoke_api_key(uow, key_id=args.key_id, now=now):
                    print(f"error: no active API key {args.key_id!r}", file=sys.stderr)
                    return 1
                await uow.commit()
                print(f"revoked {args.key_id}")
            elif (args.group, args.command) == ("policy", "set"):
                row = await repository.tenant_by_name_or_id(uow.session, args.tenant)
                if row is None:
                    print(f"error: no tenant {args.tenant!r}", file=sys.stderr)
                    return 1
                await repository.set_rest_period(uow.session, row.id, args.rest_period_days)
                await uow.commit()
                print(f"rest period of {row.name}: {args.rest_period_days} days")
        return 0
    finally:
        await database.dispose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = TriggerSettings()
    configure_logging("nps-cli", "WARNING")
    upgrade(build(settings).migrations, settings.database_url)
    return asyncio.run(_run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
