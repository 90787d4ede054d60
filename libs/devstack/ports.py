"""Small helpers the dev servers share: free ports, waiting for a listener, child-process hygiene."""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# Loaded up front: the forked child should only make the one system call, not run the dynamic loader.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


#: Ports handed out by this process, so that two picks before either is bound never collide.
_HANDED_OUT: set[int] = set()
#: How many ports below the kernel's ephemeral range a pick comes from.
_LISTEN_SPAN = 12_000


def ephemeral_start() -> int:
    """Where the kernel's range of ports for outgoing connections starts (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing is bound to right now, from below the kernel's ephemeral range.

    A port from that range (the kernel's pick for port 0) can become the local end of any outgoing
    connection, to Kafka or Postgres, between this pick and the server's bind: the server then fails
    with "address already in use". Ports below the range are only ever taken by a bind.
    """
    high = ephemeral_start() - 1
    low = max(1024, high - _LISTEN_SPAN)
    for _ in range(500):
        port = random.randint(low, high)
        if port not in _HANDED_OUT and port_is_free(port, host):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free TCP port from {low} to {high}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR a port in TIME_WAIT would look busy although a server could bind it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    *,
    within: float,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Poll until something accepts TCP connections on host:port.

    `alive` lets the caller give up early when the process that should open the port has died,
    instead of waiting out the whole deadline.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
        except (OSError, TimeoutError):
            pass
        else:
            writer.close()
            await writer.wait_closed()
            return
        if not alive():
            raise RuntimeError(f"the process meant to listen on {host}:{port} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {within:.0f}s")
        await asyncio.sleep(0.05)


def die_with_parent() -> None:
    """`preexec_fn` for children that must not outlive the process that spawned them.

    If the supervisor is killed with SIGKILL it cannot clean up, so the kernel sends the child SIGTERM
    instead (Linux only; elsewhere this is a no-op). The signal follows the *thread* that forked, so spawn
    from the main thread, never from a worker thread that may go away.
    """
    if _LIBC is None:
        return
    parent = os.getppid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may have died between fork and prctl; then nobody would ever send the signal.
    if os.getppid() != parent:
        os._exit(1)


def become_subreaper() -> None:
    """Adopt our descendants' orphans instead of leaving them to PID 1.

    `pg_ctl` starts the postmaster and exits, so the postmaster is an orphan. Where PID 1 does not
    reap (containers, micro-VMs) a postmaster killed outright stays a zombie, and Postgres refuses
    to start on its data dir while that pid exists. As subreaper we get it, and `reap_orphans`
    clears it. Linux only; elsewhere a no-op.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_orphans(command_names: frozenset[str] = frozenset({"postgres"})) -> list[int]:
    """Reap our exited children that nobody waits for: adopted orphans named in `command_names`.

    Only those: the children asyncio started are reaped by its own watcher, and stealing their exit
    status would make them look as if they had failed.
    """
    reaped: list[int] = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        name, _, rest = stat.partition("(")[2].rpartition(")")
        fields = rest.split()
        if len(fields) < 2 or fields[0] != "Z" or int(fields[1]) != me or name not in command_names:
            continue
        try:
            os.waitpid(int(entry.name), os.WNOHANG)
        except ChildProcessError:
            continue
        reaped.append(int(entry.name))
    return reaped
