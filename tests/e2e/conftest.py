"""One `make run` stack shared by the end-to-end modules whose settings agree, instead of one each.

Each launch costs the session a Postgres initdb, a broker, five service processes and their
consumer-group joins, and as much again to stop. Tests on the shared stack keep apart as the
integration tests do: each makes its own tenant (and its own customers, addresses and receivers),
and asserts only on what is that tenant's. A test that kills a service waits until the supervisor
has it ready again, so the next test finds the stack whole. Tests that stop the stack, kill its
servers, or need other settings (replicas, tracing, the kill tests' batch sizes and leases) keep a
stack of their own.

The shared stack is stopped after the last test that uses it, not at the end of the session: the
integration and unit tests that follow should not share the machine with an idle stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, StackLauncher, stack_launcher, stop

#: The owner's email 3 s after an answer (long enough for the "why" posted with the score to be in
#: it); webhook receivers run on this machine, a private address.
SHARED_ENV = {"NOTIFY_DELAY_SECONDS": "3", "OUTBOUND_ALLOW_PRIVATE": "true"}

_launched: list[StackLauncher] = []


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    launcher = stack_launcher(tmp_path_factory.mktemp("shared-stack"), env=SHARED_ENV)
    _launched.append(launcher)
    try:
        yield launcher.start()
    finally:
        stop(launcher.processes)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared stack once no test still to run uses it."""
    if not _launched or "shared_stack" not in getattr(item, "fixturenames", ()):
        return
    items = item.session.items
    later = items[items.index(item) + 1 :]
    if not any("shared_stack" in getattr(each, "fixturenames", ()) for each in later):
        for launcher in _launched:
            stop(launcher.processes)
