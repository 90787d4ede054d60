"""``nps``: manage tenants and API keys from a shell.

    nps tenant create NAME [--owner-email EMAIL] [--if-missing]
    nps tenant list
    nps apikey create TENANT          (prints the key once, on the last line)
    nps apikey revoke KEY_ID
    nps policy set TENANT --rest-period-days N [--rest-clock invitation|response]
    nps touchpoint set TENANT NAME CONFIG.json | list TENANT | retire TENANT NAME
    nps history import TENANT FILE.csv

It writes to the trigger's database (``DATABASE_URL``) through the same handlers as the admin API;
the trigger's outbox relay then tells the other services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from libs.common.db import Database, UnitOfWork
from libs.common.logs import configure_logging
from libs.common.migrations import upgrade
from services.trigger import handlers, history, repository
from services.trigger.config import TriggerSettings
from services.trigger.main import build
from services.trigger.models import COMMON
from services.trigger.schemas import TOUCHPOINT_NAME, TouchpointConfig


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
    policy_set.add_argument(
        "--rest-clock",
        choices=["invitation", "response"],
        help="count the rest period from the last invitation (default) or response",
    )

    touchpoint = groups.add_parser("touchpoint", help="touchpoints (versioned)").add_subparsers(
        dest="command", required=True
    )
    touchpoint_set = touchpoint.add_parser("set", help="create or change a touchpoint from a JSON file")
    touchpoint_set.add_argument("tenant")
    touchpoint_set.add_argument("name", help="e.g. webshop-purchase")
    touchpoint_set.add_argument(
        "file", type=Path, help="the configuration, as for PUT /v1/touchpoints/{name}"
    )
    touchpoint_list = touchpoint.add_parser("list", help="the tenant's touchpoints, current versions")
    touchpoint_list.add_argument("tenant")
    touchpoint_retire = touchpoint.add_parser("retire", help="stop a touchpoint taking events")
    touchpoint_retire.add_argument("tenant")
    touchpoint_retire.add_argument("name")

    contact_history = groups.add_parser("history", help="contact history").add_subparsers(
        dest="command", required=True
    )
    history_import = contact_history.add_parser(
        "import", help="import who was last surveyed when, from a CSV (customer_id,last_surveyed_at[,email])"
    )
    history_import.add_argument("tenant", help="tenant name or id")
    history_import.add_argument("file", type=Path, help="the CSV file")
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
                await repository.set_rest_period(uow.session, row.id, args.rest_period_days, args.rest_clock)
                await uow.commit()
                print(f"rest period of {row.name}: {args.rest_period_days} days")
            elif args.group == "touchpoint":
                return await _touchpoint_command(uow, args, now)
            elif (args.group, args.command) == ("history", "import"):
                return await history.run_import_command(uow, args.tenant, args.file)
        return 0
    finally:
        await database.dispose()


async def _touchpoint_command(uow: UnitOfWork, args: argparse.Namespace, now: datetime) -> int:
    row = await repository.tenant_by_name_or_id(uow.session, args.tenant)
    if row is None:
        print(f"error: no tenant {args.tenant!r}", file=sys.stderr)
        return 1
    if args.command == "list":
        stored = await repository.active_touchpoints(uow.session, row.id)
        if not stored:
            print("(built in) webshop-purchase, support-ticket")
        for touchpoint in stored:
            print(
                f"{touchpoint.name}  v{touchpoint.version}  {json.dumps(touchpoint.config, sort_keys=True)}"
            )
        return 0
    if not re.match(TOUCHPOINT_NAME, args.name):
        print(
            f"error: {args.name!r} is not a touchpoint name (lower-case letters, digits, '-')",
            file=sys.stderr,
        )
        return 1
    if args.command == "retire":
        if not await repository.retire_touchpoint(uow.session, row.id, args.name, now):
            print(f"error: no active touchpoint {args.name!r}", file=sys.stderr)
            return 1
        await uow.commit()
        print(f"retired {args.name}")
        return 0
    try:
        config = TouchpointConfig.model_validate_json(args.file.read_bytes())
    except OSError as error:
        print(f"error: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    except ValidationError as error:
        for problem in error.errors():
            location = ".".join(str(p) for p in problem["loc"]) or "file"
            print(f"error: {args.file}: {location}: {problem['msg']}", file=sys.stderr)
        return 1
    stored_config = config.model_dump(mode="json", exclude_none=True)
    version = await repository.add_touchpoint_version(uow.session, row.id, args.name, stored_config, now)
    await uow.commit()
    print(f"{args.name} is now version {version}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = TriggerSettings()
    configure_logging("nps-cli", "WARNING")
    upgrade(build(settings).migrations, settings.database_url)
    return asyncio.run(_run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
