"""Importing a tenant's contact history, so that a migration does not survey everybody again.

Each good row sets the customer's rest-period clock (``last_invited_at``) to the imported time
unless the clock is later already: a clock never moves backwards. Unknown customers are created.
An email is stored only where none is known yet.

The file streams through in batches of :data:`BATCH_ROWS` lines, one statement and one commit per
batch: memory stays flat however long the file, and row locks that live intake also takes are held
only for one batch. Importing a file again is harmless, so an import that stopped half-way (a lost
connection, Ctrl-C) is finished by running it again.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from prometheus_client import Counter
from tqdm import tqdm

from libs.common.db import UnitOfWork
from services.trigger.domain.history import BadRow, ContactRecord, RefusedFile, merge_duplicates, read_history
from services.trigger.repository import TriggerRepository

__all__ = ["BATCH_ROWS", "ImportReport", "RefusedFile", "import_history", "run_import_command"]

log = logging.getLogger(__name__)

BATCH_ROWS = 5_000
#: Bad rows kept for the report; the rest are only counted. A file that is wrong everywhere is
#: usually wrong in one way, and the first thousand show it.
MAX_LISTED_BAD_ROWS = 1_000

HISTORY_ROWS = Counter(
    "nps_trigger_history_rows_total", "Contact-history rows read by imports, by outcome", ["outcome"]
)
HISTORY_REFUSED = Counter("nps_trigger_history_refused_files_total", "Contact-history files refused whole")


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_rows_total: int = 0

    def add_bad_rows(self, bad_rows: Sequence[BadRow]) -> None:
        room = MAX_LISTED_BAD_ROWS - len(self.bad_rows)
        self.bad_rows.extend(bad_rows[: max(room, 0)])
        self.bad_rows_total += len(bad_rows)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [{"line": bad.line, "problem": bad.problem} for bad in self.bad_rows],
            "errors_total": self.bad_rows_total,
        }

    def summary(self) -> list[str]:
        lines = [
            f"rows read: {self.rows}; imported: {self.imported}; bad rows: {self.bad_rows_total}",
            f"customers created: {self.created}; updated: {self.updated}; "
            f"unchanged (surveyed as late or later already): {self.unchanged}",
        ]
        lines.extend(str(bad) for bad in self.bad_rows)
        if self.bad_rows_total > len(self.bad_rows):
            lines.append(f"... and {self.bad_rows_total - len(self.bad_rows)} more bad rows not listed")
        return lines


@dataclass(frozen=True)
class _Batch:
    records: list[ContactRecord]
    bad_rows: list[BadRow]
    finished: bool


def _take(rows: Iterator[ContactRecord | BadRow], size: int) -> _Batch:
    records: list[ContactRecord] = []
    bad_rows: list[BadRow] = []
    for row in itertools.islice(rows, size):
        if isinstance(row, ContactRecord):
            records.append(row)
        else:
            bad_rows.append(row)
    return _Batch(records, bad_rows, finished=len(records) + len(bad_rows) < size)


async def import_history(
    uow: UnitOfWork[TriggerRepository],
    tenant_id: uuid.UUID,
    source: BinaryIO,
    *,
    now: datetime,
    on_progress: Callable[[int], None] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Import a CSV read from ``source`` (bytes, UTF-8 with or without a BOM) for one tenant.

    Raises :class:`RefusedFile` before writing anything if the header is unusable. Commits each
    batch: this is an edge of its own, like a consumer runner, not a handler inside someone
    else's transaction. ``on_progress`` gets the byte position in ``source`` after each batch.
    """
    # surrogateescape: a stray non-UTF-8 byte makes one bad row, not an exception that ends
    # the import at line 400,000.
    lines = io.TextIOWrapper(source, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        try:
            # Reading and parsing run in a worker thread, one batch at a time, so that the
            # event loop keeps serving while a big file is read.
            rows = await asyncio.to_thread(read_history, lines, now=now)
        except RefusedFile as refused:
            HISTORY_REFUSED.inc()
            log.info("history.refused", extra={"tenant_id": str(tenant_id), "reason": str(refused)})
            raise
        report = ImportReport()
        finished = False
        while not finished:
            batch = await asyncio.to_thread(_take, rows, batch_rows)
            finished = batch.finished
            await _import_batch(uow, tenant_id, batch, report)
            if on_progress is not None:
                on_progress(source.tell())
    finally:
        # The caller owns ``source``; without this, collecting the wrapper would close it.
        lines.detach()
    _log_imported(tenant_id, report)
    return report


async def _import_batch(
    uow: UnitOfWork[TriggerRepository], tenant_id: uuid.UUID, batch: _Batch, report: ImportReport
) -> None:
    """Count one batch into the report and write its customers, committing them."""
    report.rows += len(batch.records) + len(batch.bad_rows)
    report.imported += len(batch.records)
    report.add_bad_rows(batch.bad_rows)
    HISTORY_ROWS.labels("imported").inc(len(batch.records))
    HISTORY_ROWS.labels("bad").inc(len(batch.bad_rows))
    if batch.records:
        customers = merge_duplicates(batch.records)
        created, updated = await uow.repository.upsert_contact_history(tenant_id, customers)
        await uow.commit()
        report.created += created
        report.updated += updated
        report.unchanged += len(customers) - created - updated


def _log_imported(tenant_id: uuid.UUID, report: ImportReport) -> None:
    log.info(
        "history.imported",
        extra={
            "tenant_id": str(tenant_id),
            "rows": report.rows,
            "imported": report.imported,
            # Not "created": a LogRecord attribute; logging refuses to overwrite it (KeyError).
            "customers_created": report.created,
            "customers_updated": report.updated,
            "bad_rows": report.bad_rows_total,
        },
    )


async def run_import_command(uow: UnitOfWork[TriggerRepository], tenant: str, path: Path) -> int:
    """``nps history import TENANT FILE.csv``: import with a progress bar on stderr (when it is a
    terminal) and a summary on stdout. Exit status 0 once the file was read, bad rows or not;
    1 when the tenant is unknown or the file cannot be read or is refused."""
    row = await uow.repository.tenant_by_name_or_id(tenant)
    if row is None:
        print(f"error: no tenant {tenant!r}", file=sys.stderr)
        return 1
    try:
        source = await asyncio.to_thread(path.open, "rb")
    except OSError as error:
        print(f"error: cannot read {path}: {error.strerror}", file=sys.stderr)
        return 1
    with source:
        size = os.fstat(source.fileno()).st_size
        # disable=None: a bar on a terminal, nothing in a log file or a pipe.
        with tqdm(
            total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name, disable=None
        ) as bar:
            try:
                report = await import_history(
                    uow,
                    row.id,
                    source,
                    now=datetime.now(UTC),
                    on_progress=lambda position: bar.update(position - bar.n),
                )
            except RefusedFile as refused:
                bar.close()
                print(f"error: {path} refused: {refused}", file=sys.stderr)
                return 1
    print(f"imported contact history from {path} into tenant {row.name}")
    for line in report.summary():
        print(line)
    return 0
