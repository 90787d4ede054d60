"""``nps``: manage tenants and API keys from a shell.

    nps tenant create NAME [--owner-email EMAIL] [--display-name "Acme Inc."] [--if-missing]
    nps tenant update NAME [--owner-email EMAIL] [--display-name "Acme Inc."]
    nps tenant list
    nps apikey create TENANT          (prints the key once, on the last line)
    nps apikey revoke KEY_ID
    nps policy set TENANT --rest-period-days N [--rest-clock invitation|response]
    nps touchpoint set TENANT NAME CONFIG.json | list TENANT | retire TENANT NAME
    nps history import TENANT FILE.csv
    nps dead-letters TOPIC.dlq [--last N]   (the DLQ's last copies, opened: one JSON object a line)
    nps user add|list|deactivate ...  and  nps team create|add-member|list ...   (the case desk's
                                      people: services/alerting/cli.py)

It writes to the trigger's database through the same handlers as the admin API; the trigger's
outbox relay then tells the other services. The database is ``DATABASE_URL`` or, when that is not
set, the one of the running ``make run`` stack (``<data dir>/run/state.json``; the data dir is
``NPS_DATA_DIR``, else ``.data``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from libs.common.db import Database, UnitOfWork, make_engine, service_source
from libs.common.dead_letters import open_copies, read_topic_tail
from libs.common.logs import configure_logging
from libs.common.migrations import upgrade
from services.alerting import cli as people_cli
from services.trigger import handlers, history
from services.trigger.config import TriggerSettings
from services.trigger.models import COMMON
from services.trigger.repository import TriggerRepository
from services.trigger.schemas import TOUCHPOINT_NAME, TouchpointConfig

#: The trigger's migrations (``build(settings).migrations``), named here so that the CLI does not
#: import the service's composition root and, with it, FastAPI and every route.
MIGRATIONS = Path(__file__).parent / "migrations"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nps", description="Manage NPS platform tenants and API keys.")
    groups = parser.add_subparsers(dest="group", required=True)

    tenant = groups.add_parser("tenant", help="tenants").add_subparsers(dest="command", required=True)
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("name")
    create.add_argument("--owner-email", help="who receives follow-up cases by default")
    create.add_argument("--if-missing", action="store_true", help="succeed quietly if it exists already")
    create.add_argument("--display-name", help="how emails name the company (default: NAME)")
    update = tenant.add_parser("update", help="change a tenant's display name or owner email")
    update.add_argument("name", help="tenant name or id")
    update.add_argument("--owner-email")
    update.add_argument("--display-name")
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
    dead = groups.add_parser(
        "dead-letters", help="read a DLQ's last copies, opened with their keys (erased ones say so)"
    )
    dead.add_argument("topic", help="the DLQ topic, e.g. nps.purchases.dlq")
    dead.add_argument("--last", type=_positive, default=100, help="copies per partition (100)")
    people_cli.add_parsers(groups)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError("must be 1 to 100000")
    return value


async def _dead_letters(args: argparse.Namespace, settings: TriggerSettings) -> int:
    """Each copy as one JSON line: its headers, and its value opened (``state``: opened, erased, plain)."""
    records = await read_topic_tail(settings, args.topic, last=args.last)
    engine = make_engine(settings.database_url, pool_size=1, application_name="nps-cli")
    try:
        for copy in await open_copies(engine, records):
            print(json.dumps(copy.as_json(), ensure_ascii=False))
    finally:
        await engine.dispose()
    return 0


async def _run(args: argparse.Namespace, settings: TriggerSettings) -> int:
    database = Database(
        settings.database_url,
        COMMON,
        pool_size=1,
        application_name="nps-cli",
        source=service_source("trigger"),
        repository=partial(TriggerRepository, privacy_hash_key=settings.privacy_hash_key.get_secret_value()),
    )
    now = datetime.now(UTC)
    try:
        async with database.uow() as uow:
            if args.group == "tenant":
                return await _tenant_command(uow, args, now)
            if args.group == "apikey":
                return await _apikey_command(uow, args, now)
            if (args.group, args.command) == ("policy", "set"):
                return await _set_policy(uow, args)
            if args.group == "touchpoint":
                return await _touchpoint_command(uow, args, now)
            if (args.group, args.command) == ("history", "import"):
                return await history.run_import_command(uow, args.tenant, args.file)
        return 0
    finally:
        await database.dispose()


Uow = UnitOfWork[TriggerRepository]


async def _tenant_command(uow: Uow, args: argparse.Namespace, now: datetime) -> int:
    if args.command == "create":
        return await _create_tenant(uow, args, now)
    if args.command == "update":
        return await _update_tenant(uow, args, now)
    if args.command == "list":
        for row in await uow.repository.list_tenants():
            print(f"{row.id}  {row.name}  {row.owner_email or '-'}")
    return 0


async def _create_tenant(uow: Uow, args: argparse.Namespace, now: datetime) -> int:
    try:
        tenant_id = await handlers.create_tenant(
            uow,
            name=args.name,
            owner_email=args.owner_email,
            now=now,
            display_name=args.display_name,
        )
    except handlers.TenantExists:
        if args.if_missing:
            print(f"tenant {args.name} exists already")
            return 0
        print(f"error: a tenant named {args.name!r} exists already", file=sys.stderr)
        return 1
    await uow.commit()
    print(f"created tenant {args.name} ({tenant_id})")
    return 0


async def _update_tenant(uow: Uow, args: argparse.Namespace, now: datetime) -> int:
    changes = {
        name: value
        for name, value in (
            ("display_name", args.display_name),
            ("owner_email", args.owner_email),
        )
        if value is not None
    }
    try:
        updated = await handlers.update_tenant(uow, tenant=args.name, now=now, **changes)
    except handlers.UnknownTenant:
        print(f"error: no tenant {args.name!r}", file=sys.stderr)
        return 1
    await uow.commit()
    print(f"updated tenant {updated['name']}: display name {updated['display_name'] or '-'}")
    return 0


async def _apikey_command(uow: Uow, args: argparse.Namespace, now: datetime) -> int:
    if args.command == "create":
        try:
            tenant_id, key = await handlers.create_api_key(uow, tenant=args.tenant, now=now)
        except handlers.UnknownTenant:
            print(f"error: no tenant {args.tenant!r}", file=sys.stderr)
            return 1
        await uow.commit()
        print(f"API key {key.key_id} for tenant {tenant_id}; it is shown only now:")
        print(key.secret)
    elif args.command == "revoke":
        if not await handlers.revoke_api_key(uow, key_id=args.key_id, now=now):
            print(f"error: no active API key {args.key_id!r}", file=sys.stderr)
            return 1
        await uow.commit()
        print(f"revoked {args.key_id}")
    return 0


async def _set_policy(uow: Uow, args: argparse.Namespace) -> int:
    row = await uow.repository.tenant_by_name_or_id(args.tenant)
    if row is None:
        print(f"error: no tenant {args.tenant!r}", file=sys.stderr)
        return 1
    await uow.repository.set_rest_period(row.id, args.rest_period_days, args.rest_clock)
    await uow.commit()
    print(f"rest period of {row.name}: {args.rest_period_days} days")
    return 0


async def _touchpoint_command(uow: Uow, args: argparse.Namespace, now: datetime) -> int:
    row = await uow.repository.tenant_by_name_or_id(args.tenant)
    if row is None:
        print(f"error: no tenant {args.tenant!r}", file=sys.stderr)
        return 1
    if args.command == "list":
        stored = await uow.repository.active_touchpoints(row.id)
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
        if not await uow.repository.retire_touchpoint(row.id, args.name, now):
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
    version, warnings = await handlers.set_touchpoint(uow, row.id, args.name, stored_config, now)
    await uow.commit()
    print(f"{args.name} is now version {version}")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


#: Exit status when the CLI cannot tell which database to use, or cannot reach it.
EXIT_NO_DATABASE = 2


class NoDatabase(Exception):
    """Which database to use is unknown, or it cannot be reached; the message is the one line to show."""


def _running_stack() -> dict[str, object] | None:
    """The state of the `make run` stack that is running now (its database, its broker), if any."""
    data_dir = Path(os.environ.get("NPS_DATA_DIR") or ".data")
    try:
        state = json.loads((data_dir / "run" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    url = state.get("database_url") if isinstance(state, dict) else None
    supervisor = state.get("supervisor_pid") if isinstance(state, dict) else None
    if not isinstance(url, str) or not url or not isinstance(supervisor, int):
        return None
    try:
        # A supervisor killed outright leaves its state file behind.
        os.kill(supervisor, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return state if isinstance(state, dict) else None


def _settings() -> TriggerSettings:
    if os.environ.get("DATABASE_URL"):
        return TriggerSettings()
    state = _running_stack()
    url = state.get("database_url") if state else None
    if not isinstance(url, str):
        data_dir = os.environ.get("NPS_DATA_DIR") or ".data"
        raise NoDatabase(
            f"no database: DATABASE_URL is not set and no `make run` stack is running on {data_dir} "
            "(start `make run`, set NPS_DATA_DIR to its data dir, or set DATABASE_URL)"
        )
    kafka = state.get("kafka") if state else None
    if isinstance(kafka, str) and kafka and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return TriggerSettings(database_url=url, kafka_bootstrap_servers=kafka)
    return TriggerSettings(database_url=url)


def _database_problem(error: BaseException, url: str) -> str:
    """One line about a database failure: where, and the driver's first line (never parameters)."""
    cause = getattr(error, "orig", None) or error.__cause__ or error
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"database error at {_without_password(url)}: {type(cause).__name__}: {reason[:300]}"


def _without_password(url: str) -> str:
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1@", url)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings()
    except NoDatabase as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_NO_DATABASE
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, p['loc'])) or 'settings'}: {p['msg']}" for p in error.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_NO_DATABASE
    configure_logging("nps-cli", "WARNING")
    try:
        if args.group == "dead-letters":
            return asyncio.run(_dead_letters(args, settings))
        if args.group in people_cli.GROUPS:
            return people_cli.run(args, settings.database_url)
        upgrade(MIGRATIONS, settings.database_url)
        return asyncio.run(_run(args, settings))
    except (LookupError, TimeoutError, KafkaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NO_DATABASE
    except (SQLAlchemyError, OSError) as error:
        print(f"error: {_database_problem(error, settings.database_url)}", file=sys.stderr)
        return EXIT_NO_DATABASE


if __name__ == "__main__":
    sys.exit(main())
