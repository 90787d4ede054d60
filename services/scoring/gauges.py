"""The score per touchpoint as Prometheus gauges, for dashboards and alerts on the score itself:
``nps_scoring_nps{tenant, touchpoint}`` (-100..100) and ``nps_scoring_answers{tenant, touchpoint,
category}`` (answers counted, by NPS group), refreshed from the running tallies every
``METRICS_REFRESH_SECONDS``.

Cardinality is bounded. Without ``METRICS_TENANT_LABELS`` the tenant label is ``all`` and a series
is one touchpoint name summed over every tenant. With it, a series is one tenant's touchpoint.
Either way at most ``METRICS_MAX_SERIES`` series (the ones with the most answers) keep their
names; the rest are summed into one series labelled ``other`` (tenant and touchpoint), so the
gauges hold at most (METRICS_MAX_SERIES + 1) x 4 series whatever tenants do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Gauge

from libs.common.db import Database
from libs.common.jobs import Job
from services.scoring.repository import ScoringRepository, TouchpointTotal

NPS = Gauge(
    "nps_scoring_nps", "Net Promoter Score (-100..100) of the answers counted", ["tenant", "touchpoint"]
)
ANSWERS = Gauge(
    "nps_scoring_answers",
    "Answers counted (their current score), by NPS group",
    ["tenant", "touchpoint", "category"],
)
ALL_TENANTS = "all"
OTHER = "other"


@dataclass(frozen=True)
class Series:
    tenant: str
    touchpoint: str
    promoters: int
    passives: int
    detractors: int

    @property
    def answers(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float:
        return 100.0 * (self.promoters - self.detractors) / self.answers if self.answers else 0.0


def bounded(totals: Sequence[TouchpointTotal], limit: int) -> list[Series]:
    """The ``limit`` series with the most answers under their own names, the rest summed as ``other``."""
    named = sorted(
        totals, key=lambda t: (-(t.promoters + t.passives + t.detractors), t.tenant_id or "", t.touchpoint)
    )
    kept = [
        Series(t.tenant_id or ALL_TENANTS, t.touchpoint, t.promoters, t.passives, t.detractors)
        for t in named[:limit]
    ]
    rest = named[limit:]
    if rest:
        kept.append(
            Series(
                OTHER,
                OTHER,
                sum(t.promoters for t in rest),
                sum(t.passives for t in rest),
                sum(t.detractors for t in rest),
            )
        )
    return kept


class ScoreGauges(Job):
    name = "score-gauges"
    batch_size = 1_000_000  # never "a full batch": one refresh per interval

    def __init__(
        self, database: Database[ScoringRepository], *, by_tenant: bool, limit: int, every: float
    ) -> None:
        self._database = database
        self._by_tenant = by_tenant
        self._limit = limit
        self.every = every

    async def run_once(self) -> int:
        async with self._database.uow() as uow:
            totals = await uow.repository.touchpoint_totals(by_tenant=self._by_tenant)
        series = bounded(totals, self._limit)
        # Series that fell out (a touchpoint pushed into "other") must not linger at an old value.
        NPS.clear()
        ANSWERS.clear()
        for each in series:
            NPS.labels(each.tenant, each.touchpoint).set(each.nps)
            for category, count in (
                ("promoter", each.promoters),
                ("passive", each.passives),
                ("detractor", each.detractors),
            ):
                ANSWERS.labels(each.tenant, each.touchpoint, category).set(count)
        return 0
