"""`make run`: the whole platform on one machine, supervised like production would be.

Starts embedded Postgres, Tansu (Kafka) and the SMTP sink unless `DATABASE_URL`,
`KAFKA_BOOTSTRAP_SERVERS` or `SMTP_URL` point elsewhere, creates the topics, then runs the five
services as separate processes, restarting any that dies. The embedded servers it started are
restarted too when they die (external ones are not ours to restart). Ctrl-C or SIGTERM stops
everything in reverse order. `<data-dir>/run/state.json` tells tests and tools what runs where.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from libs.common.topics import ALL_TOPICS
from libs.devstack.kafka import EmbeddedKafka, ensure_topics
from libs.devstack.pg import EmbeddedPostgres, PostgresError
from libs.devstack.ports import (
    become_subreaper,
    die_with_parent,
    port_is_free,
    reap_orphans,
    wait_for_port,
)

__all__ = ["SERVICES", "Stack", "StackConfig", "StackError", "main", "run"]

log = logging.getLogger("devstack")

SERVICES = ("trigger", "survey", "scoring", "alerting", "reporting")

#: Replica k (from 0) of a service listens on base + 1 + (its index) + 10 * k.
REPLICA_PORT_STEP = 10
MAX_REPLICAS = 9
_READY_TIMEOUT_S = 90.0
_RESTART_DELAY_S = 1.0
# A service that dies this often before it was ever ready will not get better by waiting out the deadline.
_MAX_EXITS_BEFORE_READY = 5
_SERVICE_STOP_TIMEOUT_S = 15.0
_SINK_STOP_TIMEOUT_S = 5.0
_CLI_TIMEOUT_S = 60.0
_LOG_TAIL_LINES = 40
_INFRA_POLL_S = 1.0
# Waits before the 1st, 2nd, 3rd... attempt to restart a dead server; the last one repeats.
_INFRA_RESTART_DELAYS_S = (1.0, 2.0, 5.0)


class StackError(RuntimeError):
    """The stack could not be brought up; the message says what to look at."""


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port_base: int = 8000
    kafka_port: int = 9092
    smtp_port: int = 1025
    demo: bool = True
    #: Processes per service. They share the database, the broker and the SMTP sink.
    replicas: int = 1

    def service_port(self, name: str, replica: int = 0) -> int:
        """Replica k of a service listens on its first replica's port + REPLICA_PORT_STEP * k."""
        return self.port_base + 1 + SERVICES.index(name) + REPLICA_PORT_STEP * replica

    @property
    def url_host(self) -> str:
        """Where clients connect: a wildcard bind address is not something you can dial."""
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host


@dataclass
class _Service:
    name: str
    replica: int
    port: int
    url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    exits: int = 0
    # Set while the supervisor itself stops the service to start it again (a new broker epoch).
    restarting: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def label(self) -> str:
        """`survey` for the first replica, `survey-2` for the second: how logs and messages name it."""
        return self.name if self.replica == 0 else f"{self.name}-{self.replica + 1}"


def _signal_group(process: asyncio.subprocess.Process, signum: signal.Signals) -> None:
    """Signal the child's whole process group (it leads one), so its own children go too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} is missing)"


def _without_password(url: str) -> str:
    """The URL minus its password, fit for logs and state.json."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{hostport}"))


def _secret_in_file(path: Path) -> str:
    """The secret kept in `path` (0600), made on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as secret_file:
        secret_file.write(secret + "\n")
    return secret


def _write_json_atomically(path: Path, content: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    partial.replace(path)


class Stack:
    """The infrastructure plus the five supervised services; `run()` drives it, tests can too."""

    def __init__(self, config: StackConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        self.data_dir = config.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.state_path = self.data_dir / "run" / "state.json"
        self.mail_dir: Path | None = None
        self.database_url = ""
        self.kafka_bootstrap = ""
        self.smtp_url = ""
        self.admin_token_source = ""
        self.api_key: str | None = None
        if not 1 <= config.replicas <= MAX_REPLICAS:
            raise StackError(
                f"replicas must be 1 to {MAX_REPLICAS} (their ports are {REPLICA_PORT_STEP} apart)"
            )
        self.replicas = [
            _Service(
                name=name,
                replica=replica,
                port=config.service_port(name, replica),
                url=f"http://{config.url_host}:{config.service_port(name, replica)}",
                log_path=self.logs_dir / (f"{name}.log" if replica == 0 else f"{name}-{replica + 1}.log"),
            )
            for replica in range(config.replicas)
            for name in SERVICES
        ]
        #: The first replica of each service: the address the others are told to use for it.
        self.services = {s.name: s for s in self.replicas if s.replica == 0}
        self._postgres: EmbeddedPostgres | None = None
        self._postgres_starting: asyncio.Future[None] | None = None
        self._kafka: EmbeddedKafka | None = None
        self._smtp_sink: asyncio.subprocess.Process | None = None
        self._supervisors: list[asyncio.Task[None]] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._data_dir_claim: IO[bytes] | None = None
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._publish_state = False
        # Cleared while the services are held back: between stopping them and re-creating topics.
        self._services_may_start = asyncio.Event()
        self._services_may_start.set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring everything up; returns once every service answers /readyz with 200."""
        self._claim_data_dir()
        become_subreaper()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.state_path.unlink(missing_ok=True)
        self._check_ports()
        await self._start_postgres()
        await self._start_kafka()
        await self._start_smtp_sink()
        await ensure_topics(self.kafka_bootstrap, ALL_TOPICS)
        service_env = self._service_env()
        for service in self.replicas:
            service.env = {
                **service_env,
                "NPS_SERVICE": service.name,
                "HTTP_HOST": self.config.host,
                "HTTP_PORT": str(service.port),
            }
            self._supervisors.append(
                asyncio.create_task(self._supervise(service), name=f"run {service.label}")
            )
        self._watchdog = asyncio.create_task(self._watch_infrastructure(), name="watch infrastructure")
        await self._wait_until_ready()
        self._publish_state = True
        self._write_state()

    def request_stop(self) -> None:
        if self._stop_requested.is_set():
            log.info("already stopping")
        self._stop_requested.set()

    async def stop_requested(self) -> None:
        await self._stop_requested.wait()

    async def wait(self) -> None:
        """Until a stop is requested; raises if a supervision task itself failed."""
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait([stop, *self._supervisors], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        for task in self._supervisors:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise StackError(f"supervising {task.get_name()} failed") from task.exception()

    async def stop(self) -> None:
        """Stop services, then the sink, the broker and the database; safe after a partial start."""
        if self._stopping:
            return
        log.info("stopping")
        self._stopping = True
        self._publish_state = False
        steps = (
            ("services", self._stop_services),
            ("smtp sink", self._stop_smtp_sink),
            ("kafka", self._stop_kafka),
            ("postgres", self._stop_postgres),
        )
        for what, step in steps:
            try:
                await step()
            except Exception:
                # Keep going: one stuck component must not leave the others running.
                log.exception("stopping %s failed", what)
        if self._data_dir_claim is not None:
            self.state_path.unlink(missing_ok=True)
            self._data_dir_claim.close()
            self._data_dir_claim = None
        log.info("stopped")

    # -- infrastructure --------------------------------------------------------------------------

    def _claim_data_dir(self) -> None:
        """One supervisor per data dir: a second would adopt the first one's Postgres and stop it on exit."""
        lock_path = self.state_path.with_name("supervisor.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        claim = lock_path.open("ab")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            raise StackError(f"another supervisor is running on {self.data_dir}") from None
        self._data_dir_claim = claim

    def _check_ports(self) -> None:
        """Fail before starting anything rather than half-way, e.g. when another `make run` is up."""
        wanted = {f"{s.label} (--port-base)": (self.config.host, s.port) for s in self.replicas}
        if not self.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            wanted["kafka (--kafka-port)"] = ("127.0.0.1", self.config.kafka_port)
        if not self.environ.get("SMTP_URL"):
            wanted["smtp sink (--smtp-port)"] = ("127.0.0.1", self.config.smtp_port)
        busy = [f"{port} for {what}" for what, (host, port) in wanted.items() if not port_is_free(port, host)]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}; is another `make run` up?")

    async def _start_postgres(self) -> None:
        external = self.environ.get("DATABASE_URL")
        if external:
            log.info("using DATABASE_URL %s", _without_password(external))
            self.database_url = external
            return
        self._postgres = EmbeddedPostgres(self.data_dir / "pg")
        # Shielded: if start-up is cancelled (Ctrl-C), stop() still waits for this thread to finish
        # before stopping the server, instead of racing a half-started one.
        self._postgres_starting = asyncio.ensure_future(asyncio.to_thread(self._postgres.start))
        try:
            await asyncio.shield(self._postgres_starting)
        except PostgresError as exc:
            raise StackError(f"embedded postgres did not start: {exc}") from exc
        self.database_url = self._postgres.url
        log.info("postgres ready (%s)", self._postgres.data_dir)

    async def _start_kafka(self) -> None:
        external = self.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            log.info("using KAFKA_BOOTSTRAP_SERVERS %s", external)
            self.kafka_bootstrap = external
            return
        self._kafka = EmbeddedKafka(self.config.kafka_port, self.logs_dir)
        try:
            await self._kafka.start()
        except (RuntimeError, TimeoutError) as exc:
            raise StackError(f"embedded kafka did not start: {exc}; see {self._kafka.log_path}") from exc
        self.kafka_bootstrap = self._kafka.bootstrap
        log.info("kafka (tansu) ready on %s", self.kafka_bootstrap)

    async def _start_smtp_sink(self) -> None:
        external = self.environ.get("SMTP_URL")
        if external:
            log.info("using SMTP_URL %s", _without_password(external))
            self.smtp_url = external
            return
        host, port = "127.0.0.1", self.config.smtp_port
        self.mail_dir = self.data_dir / "mail"
        command = [sys.executable, "-m", "libs.devstack.smtp_sink", "--dir", str(self.mail_dir)]
        command += ["--host", host, "--port", str(port)]
        self._smtp_sink = await self._spawn(command, env=self.environ, log_path=self.logs_dir / "smtp.log")
        sink = self._smtp_sink
        await wait_for_port(port, host, within=15, alive=lambda: sink.returncode is None)
        self.smtp_url = f"smtp://{host}:{port}"
        log.info("smtp sink ready on %s, mail in %s", self.smtp_url, self.mail_dir)

    async def _watch_infrastructure(self) -> None:
        """Restart an embedded server we started when it dies, as an orchestrator would."""
        while True:
            await asyncio.sleep(_INFRA_POLL_S)
            # A postmaster killed outright, and its backends, are our zombies until reaped.
            await asyncio.to_thread(reap_orphans)
            if self._postgres is not None and not await asyncio.to_thread(self._postgres.is_running):
                log.error("postgres exited; restarting it on %s", self._postgres.data_dir)
                await self._keep_trying("postgres", self._restart_postgres)
            if self._kafka is not None and not self._kafka.is_running():
                log.error("tansu exited; restarting it (see %s)", self._kafka.log_path)
                await self._keep_trying("kafka", self._restart_kafka)
            sink = self._smtp_sink
            if sink is not None and sink.returncode is not None:
                log.error("smtp sink exited with %s; restarting it", sink.returncode)
                await self._keep_trying("smtp sink", self._restart_smtp_sink)

    async def _keep_trying(self, what: str, restart: Callable[[], Awaitable[None]]) -> None:
        started = time.monotonic()
        for attempt in itertools.count(1):
            await asyncio.sleep(_INFRA_RESTART_DELAYS_S[min(attempt, len(_INFRA_RESTART_DELAYS_S)) - 1])
            try:
                await restart()
            except Exception as exc:
                log.warning("restarting %s failed (attempt %d): %s", what, attempt, str(exc)[:500])
                continue
            log.info("%s restarted in %.1fs", what, time.monotonic() - started)
            self._write_state()
            return

    async def _restart_postgres(self) -> None:
        """Same data dir, same socket: the services' pools (pool_pre_ping) reconnect by themselves."""
        assert self._postgres is not None
        await asyncio.to_thread(reap_orphans)
        # Tracked like the first start, so a stop during the restart waits for it to finish.
        self._postgres_starting = asyncio.ensure_future(asyncio.to_thread(self._postgres.start))
        await asyncio.shield(self._postgres_starting)
        if self._postgres.url != self.database_url:
            log.warning("postgres came back on %s; restarting the services", self._postgres.url)
            self.database_url = self._postgres.url
            await self._restart_services({"DATABASE_URL": self.database_url})

    async def _restart_kafka(self) -> None:
        """A restarted Tansu is empty: no topics, no consumer offsets, none of the messages.

        So the services are stopped, the topics created again, and the services started with a new
        NPS_BROKER_EPOCH: each one then re-publishes its retained outbox into the new broker
        (OutboxRelay._replay_into_new_broker) and its consumers read the topics from the start;
        idempotency by event id makes the repeats no-ops. The services are stopped only once the new
        broker is up, so while it is down the intake keeps accepting events into the outbox.
        """
        kafka = self._kafka
        assert kafka is not None
        if not kafka.is_running():
            await kafka.start()
            log.info("tansu is up again on %s; re-creating topics, restarting services", kafka.bootstrap)
        await self._restart_services(
            {"NPS_BROKER_EPOCH": str(kafka.started_at_ms)},
            # After the old processes are gone, none of them can auto-create a topic behind our back.
            while_stopped=lambda: ensure_topics(self.kafka_bootstrap, ALL_TOPICS, exact=True),
        )

    async def _restart_smtp_sink(self) -> None:
        await self._stop_smtp_sink()
        await self._start_smtp_sink()

    async def _restart_services(
        self,
        env_changes: Mapping[str, str],
        while_stopped: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Stop every service, run `while_stopped`, and let the supervisors start them with the new env."""
        self._services_may_start.clear()
        try:
            running = [s for s in self.replicas if s.process is not None and s.running]
            for service in running:
                service.restarting = True
            await self._terminate([s.process for s in running if s.process is not None])
            if while_stopped is not None:
                await while_stopped()
            for service in self.replicas:
                service.env.update(env_changes)
        finally:
            # Also when re-creating topics failed: services that run are better than none, and the
            # next attempt stops them again.
            self._services_may_start.set()

    async def _stop_smtp_sink(self) -> None:
        sink, self._smtp_sink = self._smtp_sink, None
        if sink is None:
            return
        if sink.returncode is None:
            _signal_group(sink, signal.SIGTERM)
            try:
                await asyncio.wait_for(sink.wait(), _SINK_STOP_TIMEOUT_S)
            except TimeoutError:
                _signal_group(sink, signal.SIGKILL)
                await sink.wait()

    async def _stop_kafka(self) -> None:
        if self._kafka is not None:
            await self._kafka.stop()

    async def _stop_postgres(self) -> None:
        if self._postgres is None:
            return
        if self._postgres_starting is not None:
            await asyncio.wait([self._postgres_starting])
        await asyncio.to_thread(self._postgres.stop)

    # -- services --------------------------------------------------------------------------------

    def _service_env(self) -> dict[str, str]:
        survey = self.services["survey"]
        env = {
            **self.environ,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "SMTP_URL": self.smtp_url,
            "NPS_ENV": "development",
            "NPS_ADMIN_TOKEN": self._admin_token(),
            # Survey links are HMACs of tenant and event id: with a well-known key anyone could
            # forge one. Kept in the data dir so links already sent keep working on the next run.
            "SURVEY_TOKEN_SECRET": self.environ.get("SURVEY_TOKEN_SECRET")
            or _secret_in_file(self.data_dir / "survey_token_secret"),
            # An explicit public URL (a tunnel, a LAN address) wins over the local one.
            "SURVEY_PUBLIC_URL": self.environ.get("SURVEY_PUBLIC_URL") or survey.url,
            "DESK_PUBLIC_URL": self.environ.get("DESK_PUBLIC_URL") or self.services["alerting"].url,
            "REPORT_PUBLIC_URL": self.environ.get("REPORT_PUBLIC_URL") or self.services["reporting"].url,
            # The trigger's export asks each service for its part of a customer's data.
            **{
                f"{name.upper()}_API_URL": self.environ.get(f"{name.upper()}_API_URL")
                or self.services[name].url
                for name in ("survey", "scoring", "alerting", "reporting")
            },
            # The suppression list's address hashes: kept in the data dir, as the token secret.
            "PRIVACY_HASH_KEY": self.environ.get("PRIVACY_HASH_KEY")
            or _secret_in_file(self.data_dir / "privacy_hash_key"),
            "PYTHONUNBUFFERED": "1",
        }
        # Only a broker we started is fresh and empty; the epoch tells services to re-publish into it.
        env.pop("NPS_BROKER_EPOCH", None)
        if self._kafka is not None and self._kafka.started_at_ms is not None:
            env["NPS_BROKER_EPOCH"] = str(self._kafka.started_at_ms)
        return env

    def _admin_token(self) -> str:
        from_env = self.environ.get("NPS_ADMIN_TOKEN")
        if from_env:
            self.admin_token_source = "NPS_ADMIN_TOKEN (environment)"
            return from_env
        path = self.data_dir / "admin_token"
        self.admin_token_source = str(path)
        return _secret_in_file(path)

    async def _supervise(self, service: _Service) -> None:
        """Keep one service running: like an orchestrator, restart it a second after it dies."""
        while True:
            await self._services_may_start.wait()
            service.process = await self._spawn(
                [sys.executable, "-m", f"services.{service.name}"], env=service.env, log_path=service.log_path
            )
            log.info("%s started (pid %d) on %s", service.label, service.process.pid, service.url)
            self._write_state()
            returncode = await service.process.wait()
            if self._stopping:
                return
            if service.restarting:
                service.restarting = False
                log.info("%s stopped for a restart (exit %s)", service.label, returncode)
                continue
            service.exits += 1
            log.warning(
                "%s exited with %s; restarting in %.0fs (log: %s)",
                service.label,
                returncode,
                _RESTART_DELAY_S,
                service.log_path,
            )
            await asyncio.sleep(_RESTART_DELAY_S)
            if self._stopping:
                return

    async def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            await asyncio.gather(*(self._wait_ready(client, s, deadline) for s in self.replicas))

    async def _wait_ready(self, client: httpx.AsyncClient, service: _Service, deadline: float) -> None:
        while True:
            if service.running:
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{service.url}/readyz")
                    if response.status_code == 200:
                        log.info("%s ready", service.label)
                        return
            if service.exits >= _MAX_EXITS_BEFORE_READY or time.monotonic() > deadline:
                why = f"exited {service.exits} times" if service.exits else "did not answer /readyz with 200"
                tail = _log_tail(service.log_path)
                raise StackError(f"{service.label} {why}; last lines of {service.log_path}:\n{tail}")
            await asyncio.sleep(0.2)

    async def _stop_services(self) -> None:
        for task in self._supervisors:
            task.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
        # The watchdog too: a restart it was in the middle of must have cleaned up before we go on.
        watchdog = [self._watchdog] if self._watchdog is not None else []
        await asyncio.gather(*self._supervisors, *watchdog, return_exceptions=True)
        await self._terminate([s.process for s in self.replicas if s.process is not None])

    async def _terminate(self, processes: Sequence[asyncio.subprocess.Process]) -> None:
        """SIGTERM, and SIGKILL for those still there after _SERVICE_STOP_TIMEOUT_S."""
        running = [process for process in processes if process.returncode is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        if not running:
            return
        _, stuck = await asyncio.wait(
            [asyncio.ensure_future(p.wait()) for p in running], timeout=_SERVICE_STOP_TIMEOUT_S
        )
        if stuck:
            log.warning(
                "%d service(s) ignored SIGTERM for %.0fs; killing", len(stuck), _SERVICE_STOP_TIMEOUT_S
            )
            for process in running:
                if process.returncode is None:
                    _signal_group(process, signal.SIGKILL)
            await asyncio.gather(*stuck)

    async def _spawn(
        self, command: Sequence[str], *, env: Mapping[str, str], log_path: Path
    ) -> asyncio.subprocess.Process:
        with log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"\n--- {stamp} devstack: starting {' '.join(command[1:])}\n".encode())
            log_file.flush()
            return await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(env),
                # Own process group: Ctrl-C reaches only the supervisor, which then stops children in order.
                process_group=0,
                preexec_fn=die_with_parent,
            )

    # -- reporting -------------------------------------------------------------------------------

    def _write_state(self) -> None:
        if not self._publish_state:
            return

        def where(s: _Service) -> dict[str, Any]:
            return {"pid": s.process.pid if s.process else None, "url": s.url}

        _write_json_atomically(
            self.state_path,
            {
                # The first replica of each; "replicas" lists them all, first replica first.
                "services": {s.name: where(s) for s in self.services.values()},
                "replicas": {name: [where(s) for s in self.replicas if s.name == name] for name in SERVICES},
                "kafka": self.kafka_bootstrap,
                "database_url": _without_password(self.database_url),
                "smtp_url": _without_password(self.smtp_url),
                "mail_dir": str(self.mail_dir) if self.mail_dir else None,
                "supervisor_pid": os.getpid(),
                # Only the servers this supervisor started (and restarts); null for external ones.
                "postgres_pid": self._postgres.pid if self._postgres else None,
                "kafka_pid": self._kafka.pid if self._kafka else None,
                "smtp_sink_pid": self._smtp_sink.pid if self._smtp_sink else None,
            },
        )

    async def create_demo_tenant(self) -> None:
        """Create tenant `demo` (if missing) and a fresh API key for it, through the trigger CLI."""
        cli = [sys.executable, "-m", "services.trigger.cli"]
        env = self.services["trigger"].env
        owner = ["--owner-email", "cx@demo.example"]
        created = await self._run_cli([*cli, "tenant", "create", "demo", "--if-missing", *owner], env)
        if created is None:
            return
        output = await self._run_cli([*cli, "apikey", "create", "demo"], env)
        lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
        self.api_key = lines[-1] if lines else None

    async def _run_cli(self, command: Sequence[str], env: Mapping[str, str]) -> str | None:
        process = await asyncio.create_subprocess_exec(
            *command, env=dict(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), _CLI_TIMEOUT_S)
        except TimeoutError:
            log.warning("demo tenant: `%s` timed out", " ".join(command[2:]))
            return None
        finally:
            # Also on cancellation (Ctrl-C during start-up): never leave the CLI running behind us.
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            log.warning(
                "demo tenant skipped: `%s` exited with %s:\n%s",
                " ".join(command[2:]),
                process.returncode,
                stderr.decode(errors="replace").strip()[-2000:],
            )
            return None
        return stdout.decode(errors="replace")

    def banner(self) -> str:
        lines = ["", "NPS platform is running:"]
        lines += [f"  {s.label:<10} {s.url}" for s in self.replicas]
        lines.append(f"  reports    {self.services['reporting'].url}/")
        if self.api_key:
            lines.append(f"  API key (tenant demo): {self.api_key}")
        lines.append(f"  admin token: {self.admin_token_source}")
        lines.append(f"  mail: {self.mail_dir}" if self.mail_dir else f"  mail: sent to {self.smtp_url}")
        lines.append(f"  logs: {self.logs_dir}")
        lines += ["", "Ctrl-C to stop", ""]
        return "\n".join(lines)


async def _serve(stack: Stack) -> None:
    await stack.start()
    if stack.config.demo:
        await stack.create_demo_tenant()
    print(stack.banner(), flush=True)
    await stack.wait()


async def run(config: StackConfig, environ: Mapping[str, str] | None = None) -> int:
    """Run the stack until SIGINT/SIGTERM; the exit status is 0 after a requested stop."""
    stack = Stack(config, environ)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stack.request_stop)
    serving = asyncio.create_task(_serve(stack), name="serve")
    stop_requested = asyncio.create_task(stack.stop_requested())
    try:
        await asyncio.wait([serving, stop_requested], return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            # Re-raises whatever made start-up or supervision fail.
            await serving
        return 0
    except StackError as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("the supervisor failed")
        return 1
    finally:
        stop_requested.cancel()
        await stack.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m libs.devstack.run", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="default: .data")
    parser.add_argument(
        "--port-base", type=int, default=8000, help="services on base+1..base+5, replica k on those + 10*k"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=int(os.environ.get("REPLICAS") or 1),
        help=f"processes per service, 1 to {MAX_REPLICAS} (default: $REPLICAS or 1)",
    )
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--host", default="127.0.0.1", help="address the services bind to")
    parser.add_argument("--no-demo", dest="demo", action="store_false", help="skip the demo tenant")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= MAX_REPLICAS:
        parser.error(
            f"--replicas (or REPLICAS) must be 1 to {MAX_REPLICAS}: "
            f"replicas are {REPLICA_PORT_STEP} ports apart"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devstack %(levelname)s %(message)s")
    # One line per /readyz poll would bury what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = StackConfig(
        data_dir=args.data_dir,
        host=args.host,
        port_base=args.port_base,
        kafka_port=args.kafka_port,
        smtp_port=args.smtp_port,
        demo=args.demo,
        replicas=args.replicas,
    )
    sys.exit(asyncio.run(run(config)))


if __name__ == "__main__":
    main()
