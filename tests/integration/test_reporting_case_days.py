"""The case rollups against the real database: random histories of follow-up cases, with repeats,
reordering and late openings, projected in random batches, leave rollups equal to what migrations
0012, 0015 and 0016 compute from the cases, duration histograms bucket for bucket those of the
cases, and panels equal to the queries over the cases themselves, for whole
and partial days; above the exact limit the percentiles come within 1 %."""

from __future__ import annotations

import importlib.util
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from libs.common.events import (
    FOLLOWUP_OPENED,
    FOLLOWUP_UPDATED,
    CaseStatus,
    Contract,
    Event,
    FollowupOpened,
    FollowupUpdated,
    new_event,
)
from libs.common.kafka import is_transient
from services.reporting import repository as reporting_repository
from services.reporting.config import ReportingSettings
from services.reporting.domain.case_days import bucket_of
from services.reporting.domain.cases import CaseFacts
from services.reporting.handlers.read_model import project
from services.reporting.main import build
from services.reporting.models import FollowupCase
from services.reporting.repository import CasesRaced, ReportFilter, ReportingRepository
from tests.conftest import ServiceUnderTest, StartService, provision_tenant

pytestmark = pytest.mark.integration

_MIGRATION_FILE = Path(__file__).parents[2] / "services/reporting/migrations/versions/0012_case_days.py"
_SPEC = importlib.util.spec_from_file_location("case_days_migration", _MIGRATION_FILE)
assert _SPEC is not None and _SPEC.loader is not None
_MIGRATION = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MIGRATION)
_MONTHS_SPEC = importlib.util.spec_from_file_location(
    "case_months_migration", _MIGRATION_FILE.with_name("0015_case_months.py")
)
assert _MONTHS_SPEC is not None and _MONTHS_SPEC.loader is not None
_MONTHS = importlib.util.module_from_spec(_MONTHS_SPEC)
_MONTHS_SPEC.loader.exec_module(_MONTHS)
_DURATION_DAYS_SPEC = importlib.util.spec_from_file_location(
    "case_duration_days_migration", _MIGRATION_FILE.with_name("0016_case_duration_days.py")
)
assert _DURATION_DAYS_SPEC is not None and _DURATION_DAYS_SPEC.loader is not None
_DURATION_DAYS = importlib.util.module_from_spec(_DURATION_DAYS_SPEC)
_DURATION_DAYS_SPEC.loader.exec_module(_DURATION_DAYS)

DAY = datetime(2026, 3, 30, tzinfo=UTC)
TOUCHPOINTS = ("checkout", "support")
STATUSES: tuple[CaseStatus, ...] = ("open", "contacted", "resolved")


def _event(tenant_id: str, event_type: str, data: Contract) -> Event[Contract]:
    return new_event(event_type, tenant_id=tenant_id, data=data, subject="customer", source="/tests")


def _history(tenant_id: str, rng: random.Random) -> list[Event[Contract]]:
    """One case: its opening and up to four snapshots, some from an older emitter."""
    # Most within five days; some over three months around them, so ranges hold whole months.
    spread = rng.choice([(0, 5), (0, 5), (-45, 60)])
    minutes = rng.randrange(spread[0] * 24 * 60, spread[1] * 24 * 60)
    case_id, opened_at = uuid.uuid4(), DAY + timedelta(minutes=minutes)
    touchpoint = rng.choice(TOUCHPOINTS)
    events = [
        _event(
            tenant_id,
            FOLLOWUP_OPENED,
            FollowupOpened(
                case_id=case_id,
                response_id=uuid.uuid4(),
                invitation_id=uuid.uuid4(),
                customer_id="customer",
                touchpoint=touchpoint,
                score=rng.randrange(0, 7),
                opened_at=opened_at,
                due_at=opened_at + timedelta(hours=24),
                assignee_name=rng.choice([None, "Ada", "Bo"]),
                team_name=rng.choice([None, "Care"]),
            ),
        )
    ]
    for _ in range(rng.randrange(0, 5)):
        whole = rng.random() < 0.8
        contact = rng.choice([None, 0.0, rng.uniform(1, 300_000)])
        events.append(
            _event(
                tenant_id,
                FOLLOWUP_UPDATED,
                FollowupUpdated(
                    case_id=case_id,
                    status=rng.choice(STATUSES),
                    breached=rng.random() < 0.3,
                    updated_at=opened_at + timedelta(hours=rng.randrange(0, 72)),
                    touchpoint=touchpoint if whole else None,
                    opened_at=opened_at if whole and rng.random() < 0.5 else None,
                    assignee_name=rng.choice([None, "Ada", "Cai"]) if whole else None,
                    team_name=rng.choice([None, "Care", "Stores"]) if whole else None,
                    seconds_to_contact=contact if whole else None,
                    contact_within_sla=rng.choice([None, True, False]) if whole else None,
                    seconds_to_resolution=rng.choice([None, rng.uniform(60, 900_000)]) if whole else None,
                    root_cause=rng.choice([None, "price", "delivery"]) if whole else None,
                    recovery_score=rng.choice([None, None, *range(11)]) if whole else None,
                ),
            )
        )
    return events


async def _project_in_batches(
    service: ServiceUnderTest, events: list[Event[Contract]], rng: random.Random
) -> None:
    while events:
        size = rng.randrange(1, 25)
        batch, events = events[:size], events[size:]
        async with service.runtime.database.uow() as uow:
            await project(batch, uow)
            await uow.commit()


async def _rollups(
    repository: ReportingRepository, tenant_id: uuid.UUID, *, from_cases: bool
) -> list[set[Any]]:
    tables = (
        ("case_days", _MIGRATION.CASE_DAYS_OF_CASES, 9),
        ("case_months", _MONTHS.CASE_MONTHS_OF_CASES, 9),
        ("case_recovery_days", _MIGRATION.CASE_RECOVERY_DAYS_OF_CASES, 6),
        ("case_recovery_months", _MONTHS.CASE_RECOVERY_MONTHS_OF_CASES, 6),
        ("case_duration_months", _MIGRATION.CASE_DURATION_MONTHS_OF_CASES, 5),
        ("case_duration_days", _DURATION_DAYS.CASE_DURATION_DAYS_OF_CASES, 5),
    )
    found = []
    for table, of_cases, keys in tables:
        source = of_cases if from_cases else f"SELECT * FROM reporting.{table}"
        columns = ", ".join(f"c{index}" for index in range(keys + 1))
        rows = await repository.session.execute(
            text(f"SELECT {columns} FROM ({source}) AS r({columns}) WHERE c0 = :tenant AND c{keys} <> 0"),
            {"tenant": tenant_id},
        )
        found.append({tuple(row) for row in rows})
    return found


async def _raw_by_state(repository: ReportingRepository, where: ReportFilter) -> set[tuple[Any, ...]]:
    """The summary's case counts as they were counted before the rollup."""
    query = (
        select(FollowupCase.touchpoint, FollowupCase.status, FollowupCase.breached, func.count())
        .where(*reporting_repository._cases_selected(where))
        .group_by(FollowupCase.touchpoint, FollowupCase.status, FollowupCase.breached)
    )
    return {tuple(row) for row in await repository.session.execute(query)}


async def _raw_panel(repository: ReportingRepository, where: ReportFilter) -> tuple[Any, ...]:
    """The follow-ups panel's figures over the cases themselves, as the queries before the rollup."""
    session = repository.session
    totals = (
        await session.execute(
            select(*reporting_repository._raw_totals()).where(*reporting_repository._cases_selected(where))
        )
    ).one()
    breakdown: dict[tuple[str, str | None], tuple[int, int]] = {}
    for row in await session.execute(reporting_repository._raw_breakdown(where)):
        dimension = "owner" if row[0] == 0 else "team" if row[1] == 0 else "touchpoint"
        name = row[2] if dimension == "owner" else row[3] if dimension == "team" else row[4]
        breakdown[(dimension, name)] = (row[5], row[6])
    recovery = {
        ("contact_speed" if row[0] == 0 else "root_cause", row[1] if row[0] == 0 else row[2], row[3], row[4])
        for row in await session.execute(reporting_repository._raw_recovery(where))
    }
    return tuple(totals), breakdown, recovery


async def _raw_histograms(repository: ReportingRepository, where: ReportFilter) -> dict[str, dict[int, int]]:
    """The durations' histograms of the range's cases themselves, bucket by bucket."""
    found: dict[str, dict[int, int]] = {}
    for metric, seconds in (
        ("contact", FollowupCase.seconds_to_contact),
        ("resolution", FollowupCase.seconds_to_resolution),
    ):
        query = select(seconds).where(*reporting_repository._cases_selected(where), seconds.is_not(None))
        for value in await repository.session.scalars(query):
            assert value is not None
            histogram = found.setdefault(metric, {})
            histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    return found


async def _panel(repository: ReportingRepository, where: ReportFilter) -> tuple[Any, ...]:
    totals = await repository.case_totals(where)
    counts = (
        totals.cases,
        totals.contacted,
        totals.within_sla,
        totals.sla_known,
        totals.breached,
        totals.resolved,
    )
    breakdown = {(c.dimension, c.name): (c.cases, c.breached) for c in await repository.case_breakdown(where)}
    recovery = {
        (r.dimension, r.group, r.recovery_score, r.cases) for r in await repository.recovery_scores(where)
    }
    return counts, breakdown, recovery


def _ranges(tenant_id: uuid.UUID) -> list[ReportFilter]:

    def at(**offset: int) -> datetime:
        return DAY + timedelta(**offset)

    return [
        ReportFilter(tenant_id),
        ReportFilter(tenant_id, "checkout"),
        ReportFilter(tenant_id, None, DAY + timedelta(days=1), DAY + timedelta(days=3)),
        ReportFilter(tenant_id, "support", at(hours=13), at(days=3, hours=7)),
        ReportFilter(tenant_id, None, at(hours=5), at(hours=20)),
        ReportFilter(tenant_id, None, at(days=2, minutes=30)),
        ReportFilter(tenant_id, None, None, at(days=1, hours=12)),
        ReportFilter(tenant_id, None, DAY.replace(day=31, hour=18), DAY.replace(month=4, day=2, hour=6)),
        # Whole months (the month rows), the whole days around them and partial edge days.
        ReportFilter(
            tenant_id, None, DAY.replace(month=2, day=20, hour=12), DAY.replace(month=5, day=9, hour=3)
        ),
        ReportFilter(tenant_id, "checkout", DAY.replace(month=3, day=1), DAY.replace(month=5, day=1)),
        ReportFilter(tenant_id, None, DAY.replace(month=2, day=14), None),
        ReportFilter(tenant_id, None, None, DAY.replace(month=4, day=17, hour=9)),
    ]


@pytest.mark.parametrize("seed", [12, 29, 41])
async def test_random_case_histories_leave_rollups_and_panels_equal_to_the_cases(
    start_service: StartService, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    tenant_id = uuid.UUID(tenant.tenant_id)
    rng = random.Random(seed)
    events: list[Event[Contract]] = []
    for _ in range(60):
        history = _history(tenant.tenant_id, rng)
        # Repeats, as redeliveries (the same event) and as replays (the same facts, a new id).
        events.extend([*history, rng.choice(history)])
    rng.shuffle(events)
    await _project_in_batches(reporting, events, rng)

    async with reporting.runtime.database.uow() as uow:
        repository = uow.repository
        assert await _rollups(repository, tenant_id, from_cases=False) == await _rollups(
            repository, tenant_id, from_cases=True
        )
        exact = []
        for where in _ranges(tenant_id):
            rolled_up = {(t, s, b, n) for t, s, b, n in await repository.cases_by_state(where)}
            assert rolled_up == await _raw_by_state(repository, where), where
            assert await _panel(repository, where) == await _raw_panel(repository, where), where
            histograms = {  # a row emptied by a case's move stays, at zero
                metric: {bucket: n for bucket, n in buckets.items() if n}
                for metric, buckets in (await repository._duration_histograms(where)).items()
            }
            assert histograms == await _raw_histograms(repository, where), where
            exact.append(await repository.case_totals(where))
        assert all(totals.exact_percentiles for totals in exact)
        assert exact[0].cases == 60
        # Every range beyond the limit: the percentiles from the histogram, within 1 %.
        monkeypatch.setattr(reporting_repository, "EXACT_PERCENTILE_CASES", 0)
        for where, known in zip(_ranges(tenant_id), exact, strict=True):
            approximate = await repository.case_totals(where)
            assert approximate.exact_percentiles is (known.cases == 0)
            pairs = [
                (approximate.contact_p50_seconds, known.contact_p50_seconds),
                (approximate.contact_p90_seconds, known.contact_p90_seconds),
                (approximate.resolution_p50_seconds, known.resolution_p50_seconds),
                (approximate.resolution_p90_seconds, known.resolution_p90_seconds),
            ]
            for estimate, value in pairs:
                assert (estimate is None) == (value is None), where
                assert estimate is None or value is None or abs(estimate - value) <= 0.01 * value + 1e-6, (
                    where
                )


async def test_a_case_stored_after_the_locking_read_refuses_the_batch_rather_than_miscount_it(
    start_service: StartService,
) -> None:
    reporting = await start_service(build, ReportingSettings)
    tenant = await provision_tenant(reporting.runtime)
    key = (uuid.UUID(tenant.tenant_id), uuid.uuid4())
    facts = {
        key: CaseFacts(status="open", breached=False, updated_at=DAY, touchpoint="checkout", opened_at=DAY)
    }
    database = reporting.runtime.database
    async with database.uow() as late:
        assert await late.repository.held_cases([key]) == {}
        async with database.uow() as first:
            assert list(await first.repository.merge_cases(facts, held=())) == [key]
            await first.commit()
        with pytest.raises(CasesRaced) as raised:
            await late.repository.merge_cases(facts, held=())
    assert is_transient(raised.value)
