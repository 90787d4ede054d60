"""Database plumbing: the engine, the tables every service has, and the unit of work.

Each service owns one Postgres schema. Besides its own tables it has the same five shared ones:
``outbox`` (events waiting to be published), ``processed_events`` (idempotent consumers),
``relay_state``, and ``tenants`` / ``api_keys`` (this service's copy of the tenant registry).
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, cast, overload

from prometheus_client import Counter
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from typing_extensions import TypeVar

from libs.common import tracing
from libs.common.events import Contract, Event


class InvalidDatabaseUrl(ValueError):
    """A DATABASE_URL whose TLS parameters contradict each other or name a missing file."""


_VERIFYING_MODES = ("verify-ca", "verify-full")
_TLS_MODES = ("disable", "allow", "prefer", "require", *_VERIFYING_MODES)


def engine_url_and_connect_args(url: str) -> tuple[URL, dict[str, Any]]:
    """The engine URL and asyncpg connect arguments for a DATABASE_URL, with its TLS applied.

    asyncpg takes ``ssl=<mode>`` from the URL but not libpq's ``sslrootcert``, ``sslcert`` and
    ``sslkey`` (SQLAlchemy would hand them to ``connect()``, which refuses unknown keywords), nor
    the ``sslmode`` spelling managed providers print. So both spellings are accepted here, and
    certificate files become one :class:`ssl.SSLContext`, with libpq's meaning of each mode.
    """
    parsed = make_url(url)
    query = {key: value for key, value in parsed.query.items() if isinstance(value, str)}
    if len(query) != len(parsed.query):
        raise InvalidDatabaseUrl("a query parameter is given twice")
    if "ssl" in query and "sslmode" in query:
        raise InvalidDatabaseUrl("give ssl or sslmode, not both")
    mode = query.pop("ssl", None) or query.pop("sslmode", None)
    rootcert = query.pop("sslrootcert", None)
    certfile = query.pop("sslcert", None)
    keyfile = query.pop("sslkey", None)
    if mode is not None and mode not in _TLS_MODES:
        raise InvalidDatabaseUrl(f"ssl={mode} is not one of {', '.join(_TLS_MODES)}")
    connect_args: dict[str, Any] = {}
    if rootcert is None and certfile is None and keyfile is None:
        if mode is not None:
            # asyncpg's own handling: verify-* reads PGSSLROOTCERT or ~/.postgresql/root.crt.
            connect_args["ssl"] = mode
        return parsed.set(query=query), connect_args
    if (certfile is None) != (keyfile is None):
        raise InvalidDatabaseUrl("sslcert and sslkey go together (a client certificate and its key)")
    if rootcert is not None and mode not in (None, *_VERIFYING_MODES):
        raise InvalidDatabaseUrl(f"sslrootcert is for ssl=verify-full or verify-ca, not ssl={mode}")
    if mode == "disable":
        raise InvalidDatabaseUrl("sslcert with ssl=disable: the certificate would never be sent")
    for name, path in (("sslrootcert", rootcert), ("sslcert", certfile), ("sslkey", keyfile)):
        if path is not None and not Path(path).is_file():
            raise InvalidDatabaseUrl(f"{name}={path}: no such file")
    # A CA file without a mode means the user wants the server checked: verify-full, as libpq's
    # sslrootcert alone would not (it leaves sslmode=prefer), is the safe reading.
    verify = mode in _VERIFYING_MODES or (mode is None and rootcert is not None)
    try:
        context = ssl.create_default_context(cafile=rootcert)
        if certfile is not None:
            context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as error:
        raise InvalidDatabaseUrl(
            f"sslrootcert, sslcert or sslkey is not a usable PEM file: {error}"
        ) from None
    if verify:
        context.check_hostname = mode != "verify-ca"
    else:
        # require/prefer/allow with only a client certificate: encrypted, server not checked (libpq).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    connect_args["ssl"] = context
    return parsed.set(query=query), connect_args


class MeasuredPool(AsyncAdaptedQueuePool):
    """The async engine's usual pool, which also knows how many tasks are waiting for a connection
    now and reports how long each took to get one (SQLAlchemy exposes neither)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0
        self.on_acquire: Callable[[float], None] | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        started = time.perf_counter()
        self.waiting += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1
            if self.on_acquire is not None:
                self.on_acquire(time.perf_counter() - started)

    def recreate(self) -> MeasuredPool:
        pool = cast(MeasuredPool, super().recreate())
        pool.on_acquire = self.on_acquire
        return pool


def make_engine(url: str, *, pool_size: int = 10, application_name: str = "nps") -> AsyncEngine:
    engine_url, connect_args = engine_url_and_connect_args(url)
    return create_async_engine(
        engine_url,
        poolclass=MeasuredPool,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # Parameters are customer data (emails); an error's text must not carry them into a log.
        hide_parameters=True,
        connect_args={**connect_args, "server_settings": {"application_name": application_name}},
    )


@dataclass(frozen=True)
class CommonTables:
    outbox: Table
    processed_events: Table
    relay_state: Table
    tenants: Table
    api_keys: Table
    held_events: Table
    dlq_keys: Table


def add_common_tables(metadata: MetaData) -> CommonTables:
    """Declare the shared tables in a service's metadata (its schema comes from the metadata)."""
    return CommonTables(
        outbox=_outbox(metadata),
        processed_events=_processed_events(metadata),
        relay_state=_relay_state(metadata),
        tenants=_tenants(metadata),
        api_keys=_api_keys(metadata),
        held_events=_held_events(metadata),
        dlq_keys=_dlq_keys(metadata),
    )


def _outbox(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("key", String(500), nullable=True),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        #: Whose event this is (the envelope's tenant, the data's ``customer_id``), so that an
        #: erasure finds the customer's rows, published or not, by index (libs/common/erasure.py).
        Column("tenant_id", String(100), nullable=True),
        Column("customer_id", String(200), nullable=True),
        # The relay only ever scans what is unpublished; keep that scan an index range.
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_published_at", "published_at"),
        Index(
            "ix_outbox_customer", "tenant_id", "customer_id", postgresql_where=text("customer_id IS NOT NULL")
        ),
    )


def _processed_events(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("tenant_id", String(100), primary_key=True),
        Column("event_id", String(200), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_processed_events_processed_at", "processed_at"),
    )


def _relay_state(metadata: MetaData) -> Table:
    return Table(
        "relay_state",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("value", Text, nullable=False),
    )


def _tenants(metadata: MetaData) -> Table:
    return Table(
        "tenants",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("name", String(100), nullable=False, unique=True),
        Column("owner_email", String(320), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        #: How the company is named to its customers ("Acme Inc."); ``name`` is the slug.
        Column("display_name", String(200), nullable=True),
        #: Months after which customers' comments are removed and invitations anonymised (null: kept),
        #: from ``tenant.retention_set.v1``; enforced by each service's retention job.
        Column("retention_comments_months", SmallInteger, nullable=True),
        Column("retention_invitations_months", SmallInteger, nullable=True),
    )


def _api_keys(metadata: MetaData) -> Table:
    return Table(
        "api_keys",
        metadata,
        Column("key_id", String(16), primary_key=True),
        Column("tenant_id", Uuid, nullable=False, index=True),
        Column("key_hash", String(64), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )


def _held_events(metadata: MetaData) -> Table:
    return Table(
        "held_events",
        metadata,
        # Events of a tenant this service has not heard of yet: its tenant.created may still be on
        # the way (another topic), so they wait here, durably, in arrival order, for a bounded time.
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("consumer", String(100), nullable=False),
        Column("tenant_id", String(100), nullable=False),
        Column("event_id", String(200), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("partition", BigInteger, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("payload", LargeBinary, nullable=False),
        Column("held_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_held_events_tenant", "consumer", "tenant_id", "id"),
        # An erasure finds a customer's held events by their Kafka key (the customer id).
        Index("ix_held_events_key", "tenant_id", "key"),
    )


def _dlq_keys(metadata: MetaData) -> Table:
    return Table(
        "dlq_keys",
        metadata,
        # The key of each DLQ copy this service made (libs/common/sealing.py): whose message it was,
        # so that erasing the customer deletes it, and the copy on the broker can no longer be read.
        Column("id", Uuid, primary_key=True),
        Column("key", LargeBinary, nullable=False),
        Column("tenant_id", String(100), nullable=True),
        Column("customer_id", String(200), nullable=True),
        Column("topic", String(249), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index(
            "ix_dlq_keys_customer",
            "tenant_id",
            "customer_id",
            postgresql_where=text("customer_id IS NOT NULL"),
        ),
        # Keys of copies nobody can be told from expire (DLQ_UNATTRIBUTED_KEY_DAYS).
        Index("ix_dlq_keys_unattributed", "created_at", postgresql_where=text("customer_id IS NULL")),
    )


async def copy_rows(
    session: AsyncSession, table: Table, columns: Sequence[str], records: Iterable[Sequence[Any]]
) -> None:
    """Append rows with COPY inside the session's transaction: the fastest way in, for rows that
    cannot conflict (callers guarantee that; there is no ON CONFLICT for COPY)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.copy_records_to_table(
        table.name, schema_name=table.schema, columns=list(columns), records=records
    )


OUTBOX_COLUMNS = ("event_id", "event_type", "topic", "key", "payload", "tenant_id", "customer_id")


def outbox_row(event: Event[Contract], *, key: str | None = None, topic: str | None = None) -> dict[str, Any]:
    """The outbox row of an event. It carries the trace context current where it is written (the
    request or message being handled), so the relay publishes it in that trace; an event written
    outside any trace keeps whatever context it was built with."""
    envelope = event.envelope
    context = tracing.carrier()
    if context:
        envelope = envelope.model_copy(
            update={
                "traceparent": context[tracing.TRACEPARENT],
                "tracestate": context.get(tracing.TRACESTATE),
            }
        )
    customer_id = getattr(event.data, "customer_id", None)
    return {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "topic": topic or event.data.topic,
        "key": key if key is not None else envelope.subject,
        "payload": envelope.to_json(),
        "tenant_id": envelope.tenantid,
        "customer_id": customer_id if isinstance(customer_id, str) else None,
    }


#: A service's repository: a typed object over the unit of work's session, holding all its SQL.
#: A bare ``UnitOfWork`` (code that never touches the repository: tenancy, emitting) is any service's.
R = TypeVar("R", covariant=True, default=object)


def service_source(name: str) -> str:
    """The CloudEvents ``source`` of everything a service emits, e.g. ``/nps/trigger``."""
    return f"/nps/{name}"


def no_repository(session: AsyncSession) -> None:
    """For a database used only by the shared machinery (outbox, tenancy), which has no queries of
    its own service."""
    return None


class UnitOfWork(Generic[R]):
    """One database transaction plus the events it will publish.

    Handlers read and change state through :attr:`repository` (the service's typed queries over
    this transaction's session) and record outgoing events with :meth:`emit`, which takes the contract
    and fills in its type, topic and the service's ``source``; they never commit.
    The edge (an HTTP route, the consumer runner, a job of the runner) calls :meth:`commit`, which
    writes the events into the outbox in the same transaction as the state change. Unit tests drive
    handlers with a fake of the same shape (``tests/support/fakes.py``).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tables: CommonTables,
        on_commit: Callable[[], None] | None = None,
        repository: Callable[[AsyncSession], R] = no_repository,  # type: ignore[assignment]
        source: str | None = None,
        on_wake: Callable[[str], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self.tables = tables
        self._source = source
        self._on_commit = on_commit
        self._on_wake = on_wake
        self._wakes: set[str] = set()
        self._make_repository = repository
        self._repository: R | None = None
        self._pending: list[dict[str, Any]] = []
        self._counted: list[tuple[Counter, float]] = []
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not open")
        return self._session

    @property
    def repository(self) -> R:
        """The service's queries, bound to this transaction."""
        if self._repository is None:
            self._repository = self._make_repository(self.session)
        return self._repository

    async def __aenter__(self) -> UnitOfWork[R]:
        self._session = self._sessions()
        await self._session.begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session = self.session
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()
            self._session = None
            self._repository = None
            self._pending.clear()
            self._counted.clear()
            self._wakes.clear()

    @property
    def source(self) -> str:
        """Whose events these are (``/nps/<service>``): the ``source`` of every contract emitted here."""
        if self._source is None:
            raise RuntimeError("this unit of work belongs to no service: emit built events instead")
        return self._source

    def event_of(
        self,
        contract: Contract,
        *,
        tenant_id: uuid.UUID | str,
        subject: str | None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> Event[Contract]:
        """The event this unit of work would emit for ``contract``, without emitting it."""
        return contract.event(
            tenant_id=tenant_id, subject=subject, source=self.source, event_id=event_id, time=time
        )

    @overload
    def emit(self, event: Event[Contract], *, key: str | None = None) -> None: ...

    @overload
    def emit(
        self,
        event: Contract,
        *,
        tenant_id: uuid.UUID | str,
        subject: str | None,
        event_id: str | None = None,
        time: datetime | None = None,
        key: str | None = None,
    ) -> None: ...

    def emit(
        self,
        event: Event[Contract] | Contract,
        *,
        tenant_id: uuid.UUID | str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
        key: str | None = None,
    ) -> None:
        """Record an outgoing event: a contract (its type and topic are its own, the source is this
        service's, the Kafka key defaults to the subject), or an event already built."""
        if isinstance(event, Contract):
            if tenant_id is None:
                raise TypeError("emitting a contract needs the tenant_id it belongs to")
            event = self.event_of(event, tenant_id=tenant_id, subject=subject, event_id=event_id, time=time)
        self._record(event, key)

    def _record(self, event: Event[Contract], key: str | None) -> None:
        self._pending.append(outbox_row(event, key=key))

    @property
    def emitted(self) -> int:
        return len(self._pending)

    def wake(self, job: str) -> None:
        """Start the background job's next cycle once this unit has committed, rather than after
        the job's interval: this transaction gave it work that is due now."""
        self._wakes.add(job)

    def count(self, counter: Counter, amount: float = 1) -> None:
        """Add ``amount`` to a Prometheus counter (a labelled child) once this unit commits, and
        never if it rolls back: a transaction the consumer retries (a serialization failure, a lost
        race) would otherwise count its effects once per attempt."""
        if amount:
            self._counted.append((counter, amount))

    def _apply_counts(self) -> None:
        counted, self._counted = self._counted, []
        for counter, amount in counted:
            counter.inc(amount)

    async def claim(self, consumer: str, events: list[Event[Contract]]) -> list[Event[Contract]]:
        """Record events as processed by ``consumer``; return only those not seen before.

        One statement for the whole batch. Because it runs inside this transaction, a rollback
        un-claims them, so an event counts as processed exactly when its effects are committed.
        """
        if not events:
            return []
        unique: dict[tuple[str, str], Event[Contract]] = {}
        for event in events:
            unique.setdefault((event.tenant_id, event.id), event)
        table = self.tables.processed_events
        # unnest() of two arrays: one cached statement whatever the batch size.
        statement = text(
            f'INSERT INTO "{table.schema}".processed_events (consumer, tenant_id, event_id) '
            "SELECT :consumer, tenant_id, event_id "
            "FROM unnest(CAST(:tenants AS text[]), CAST(:ids AS text[])) AS batch(tenant_id, event_id) "
            "ON CONFLICT DO NOTHING RETURNING tenant_id, event_id"
        )
        result = await self.session.execute(
            statement,
            {"consumer": consumer, "tenants": [t for t, _ in unique], "ids": [e for _, e in unique]},
        )
        fresh = {(row.tenant_id, row.event_id) for row in result}
        return [event for key, event in unique.items() if key in fresh]

    async def commit(self) -> None:
        if self._pending:
            await copy_rows(
                self.session,
                self.tables.outbox,
                OUTBOX_COLUMNS,
                [tuple(row[c] for c in OUTBOX_COLUMNS) for row in self._pending],
            )
        await self.session.commit()
        self._apply_counts()
        had_events = bool(self._pending)
        self._pending.clear()
        if had_events and self._on_commit is not None:
            self._on_commit()
        wakes, self._wakes = self._wakes, set()
        if self._on_wake is not None:
            for job in wakes:
                self._on_wake(job)


class Database(Generic[R]):
    """The engine, session factory, shared tables and repository of one service."""

    def __init__(
        self,
        url: str,
        tables: CommonTables,
        *,
        pool_size: int = 10,
        application_name: str = "nps",
        repository: Callable[[AsyncSession], R] = no_repository,  # type: ignore[assignment]
        source: str | None = None,
    ):
        self.engine = make_engine(url, pool_size=pool_size, application_name=application_name)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.tables = tables
        self.repository = repository
        #: The ``source`` of the events its units of work emit: :func:`service_source` of the service.
        self.source = source
        self.on_commit: Callable[[], None] | None = None
        #: Wakes a background job by name (:meth:`UnitOfWork.wake`); set by the runtime.
        self.on_wake: Callable[[str], None] | None = None

    def uow(self) -> UnitOfWork[R]:
        return UnitOfWork(
            self.sessions, self.tables, self.on_commit, self.repository, self.source, on_wake=self.on_wake
        )

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
