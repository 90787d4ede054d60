"""A unit of work without a database, for unit tests that drive handlers.

``FakeUnitOfWork(repository)`` has the shape of :class:`libs.common.db.UnitOfWork`: handlers reach
the (in-memory) repository through ``uow.repository``, record events with ``uow.emit`` (a contract
gets its type, topic and the ``source`` given to the fake) and consumers claim event ids with
``uow.claim``. Nothing is kept until :meth:`commit`, so a test can also check
what a rolled-back unit leaves behind. A handler that reaches for ``uow.session`` fails loudly:
all SQL belongs in the repository, which the fake replaces.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, NoReturn

from libs.common.db import R, UnitOfWork, outbox_row
from libs.common.events import Contract, Event


class FakeUnitOfWork(UnitOfWork[R]):
    def __init__(self, repository: R, *, source: str = "/nps/test") -> None:
        self._fake_repository = repository
        self._source = source
        #: Events committed, in order, with the outbox row each would have written.
        self.events: list[Event[Contract]] = []
        self.outbox: list[dict[str, Any]] = []
        self.commits = 0
        self._pending_events: list[tuple[Event[Contract], dict[str, Any]]] = []
        self._processed: set[tuple[str, str, str]] = set()
        self._pending_claims: set[tuple[str, str, str]] = set()
        #: The jobs the handlers asked to wake (:meth:`UnitOfWork.wake`).
        self.woken: set[str] = set()
        self._counted = []

    @property
    def session(self) -> NoReturn:
        raise AssertionError("a handler used uow.session: its SQL belongs in the repository")

    @property
    def repository(self) -> R:
        return self._fake_repository

    async def __aenter__(self) -> FakeUnitOfWork[R]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pending_events.clear()
        self._pending_claims.clear()
        self._counted.clear()

    def _record(self, event: Event[Contract], key: str | None) -> None:
        self._pending_events.append((event, outbox_row(event, key=key)))

    @property
    def emitted(self) -> int:
        return len(self._pending_events)

    def wake(self, job: str) -> None:
        self.woken.add(job)

    async def claim(self, consumer: str, events: list[Event[Contract]]) -> list[Event[Contract]]:
        fresh: list[Event[Contract]] = []
        for event in events:
            key = (consumer, event.tenant_id, event.id)
            if key in self._processed or key in self._pending_claims:
                continue
            self._pending_claims.add(key)
            fresh.append(event)
        return fresh

    async def commit(self) -> None:
        for event, row in self._pending_events:
            self.events.append(event)
            self.outbox.append(row)
        self._processed |= self._pending_claims
        self._pending_events.clear()
        self._pending_claims.clear()
        self._apply_counts()
        self.commits += 1

    def of_type(self, event_type: str) -> list[Event[Contract]]:
        """The committed events of one type."""
        return [event for event in self.events if event.type == event_type]
