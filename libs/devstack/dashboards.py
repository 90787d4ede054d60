"""The Grafana dashboards, as code: ``python -m libs.devstack.dashboards`` (``make dashboards``) writes
them to ``deploy/grafana/dashboards/*.json``, which Grafana provisions from
``deploy/grafana/provisioning/``. Edit this module, never the JSON: a unit test fails when the
committed files differ from what this module builds.

Every service names its metrics ``nps_<service>_<thing>``, and the scrape config labels each target
with ``service``; so one query reads the same machinery metric of all five services through a
``__name__`` matcher, and groups by ``service``.

A panel names only metrics the services expose, since tests/e2e/test_observability.py fails on any
panel that shows no data.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
#: The uid deploy/grafana/provisioning/datasources/prometheus.yml gives the Prometheus datasource.
DATASOURCE_UID = "nps-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


def series(suffix: str, **matchers: str) -> str:
    """The selector of one machinery metric across every service, e.g. ``http_requests_total``
    selects ``nps_trigger_http_requests_total``, ``nps_survey_http_requests_total``, ...; a matcher
    value starting with ``~`` is a regular expression."""
    parts = [f'__name__=~"nps_[a-z]+_{suffix}"']
    for label, value in matchers.items():
        parts.append(f'{label}=~"{value[1:]}"' if value.startswith("~") else f'{label}="{value}"')
    return "{" + ", ".join(parts) + "}"


def per_second(selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({selector}[$__rate_interval]))"


def per_interval(selector: str, by: str = "") -> str:
    """How many were counted in each point's interval (for counts too small for a per-second rate)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({selector}[$__rate_interval]))"


def quantile(q: float, bucket_selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket_selector}[$__rate_interval])))"


def zero_when_absent(selected: str, whole: str) -> str:
    """``selected``, or 0 for each group of ``whole`` that has no such series yet: a counter with a
    label (a 5xx status, a category) appears only once it is first counted, and a ratio of nothing
    would show "No data" rather than 0 while ``whole`` shows traffic."""
    return f"({selected} or ({whole} * 0))"


class Kind(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    #: A table shows the latest value of each series, not a graph over time.
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: Sequence[Query]
    unit: str = "short"
    kind: Kind = Kind.TIMESERIES
    width: int = 12


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: Sequence[PanelSpec]


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: Sequence[RowSpec]
    tags: Sequence[str] = field(default=("nps",))

    @property
    def filename(self) -> str:
        return f"{self.uid.removeprefix('nps-')}.json"


# --- platform overview: health, throughput, errors, latency -------------------------------------

_REQUESTS = series("http_requests_total")
_REQUEST_RATE = f"sum by (service) (rate({_REQUESTS}[$__rate_interval]))"
_5XX_RATE = f"sum by (service) (rate({series('http_requests_total', status='~5..')}[$__rate_interval]))"

PLATFORM = DashboardSpec(
    uid="nps-platform-overview",
    title="NPS / Platform overview",
    description="Health, throughput, errors and latency of the five NPS services.",
    rows=[
        RowSpec(
            "Health",
            [
                PanelSpec(
                    "Services up",
                    "1 when Prometheus' last scrape of the service's /metrics succeeded.",
                    [Query('up{service=~"trigger|survey|scoring|alerting|reporting"}', "{{service}}")],
                    unit="bool",
                    kind=Kind.STAT,
                    width=12,
                ),
                PanelSpec(
                    "Dependencies reachable",
                    "1 while every process of the service reaches the dependency (its readiness check, "
                    "run at each scrape); 0: its /readyz answers 503 and it takes no traffic.",
                    [
                        Query(
                            f"min by (service, dependency) ({series('ready')})",
                            "{{service}} {{dependency}}",
                        )
                    ],
                    unit="bool",
                    kind=Kind.STAT,
                    width=12,
                ),
                PanelSpec(
                    "Readiness checks by answer",
                    "/readyz answers per second by status: 503 means the database or the Kafka broker "
                    "is out of the service's reach.",
                    [
                        Query(
                            "sum by (service, status) "
                            f"(rate({series('http_requests_total', route='/readyz')}[$__rate_interval]))",
                            "{{service}} {{status}}",
                        )
                    ],
                    unit="reqps",
                ),
                PanelSpec(
                    "Running builds",
                    "The version and source revision (NPS_REVISION) each service's processes run: two "
                    "rows for one service during a rolling upgrade, and after it if one was left behind.",
                    [
                        Query(
                            "count by (service, version, revision) (nps_build_info)",
                            "{{service}} {{version}} {{revision}}",
                            instant=True,
                        )
                    ],
                    kind=Kind.TABLE,
                    width=24,
                ),
            ],
        ),
        RowSpec(
            "HTTP",
            [
                PanelSpec(
                    "Request rate",
                    "HTTP requests per second, by service.",
                    [Query(_REQUEST_RATE, "{{service}}")],
                    unit="reqps",
                ),
                PanelSpec(
                    "Error rate (5xx)",
                    "Share of HTTP requests answered with a 5xx status, by service.",
                    [Query(f"{zero_when_absent(_5XX_RATE, _REQUEST_RATE)} / {_REQUEST_RATE}", "{{service}}")],
                    unit="percentunit",
                ),
                PanelSpec(
                    "Latency p50",
                    "Median HTTP request time, by service.",
                    [Query(quantile(0.5, series("http_request_seconds_bucket"), "service"), "{{service}}")],
                    unit="s",
                ),
                PanelSpec(
                    "Latency p95",
                    "95th percentile HTTP request time, by service.",
                    [Query(quantile(0.95, series("http_request_seconds_bucket"), "service"), "{{service}}")],
                    unit="s",
                ),
            ],
        ),
        RowSpec(
            "Kafka",
            [
                PanelSpec(
                    "Consumed messages by outcome",
                    "Kafka messages handled per second, by service and outcome.",
                    [
                        Query(
                            "sum by (service, outcome) "
                            f"(rate({series('consumed_messages_total')}[$__rate_interval]))",
                            "{{service}} {{outcome}}",
                        )
                    ],
                    unit="ops",
                    width=24,
                ),
            ],
        ),
        RowSpec(
            "Database and SMTP",
            [
                PanelSpec(
                    "Database connections in use",
                    "Connections checked out of each service's pool (DATABASE_POOL_SIZE, as many again "
                    "may overflow), summed over its processes.",
                    [Query(f"sum by (service) ({series('db_pool_connections_in_use')})", "{{service}}")],
                    width=8,
                ),
                PanelSpec(
                    "Waiting for a database connection",
                    "Tasks waiting for a pooled connection now: above 0 for long, the pool is too small "
                    "for the load (or the database is slow).",
                    [Query(f"sum by (service) ({series('db_pool_waiting')})", "{{service}}")],
                    width=8,
                ),
                PanelSpec(
                    "SMTP send p95",
                    "95th percentile time of one SMTP send: the survey's invitations and reminders, "
                    "alerting's emails to case owners.",
                    [
                        Query(
                            quantile(
                                0.95,
                                '{__name__=~"nps_(survey|alerting)_smtp_send_seconds_bucket"}',
                                "service",
                            ),
                            "{{service}}",
                        )
                    ],
                    unit="s",
                    width=8,
                ),
            ],
        ),
    ],
)

# --- pipeline: consumers, outbox, jobs, DLQ ------------------------------------------------------

PIPELINE = DashboardSpec(
    uid="nps-pipeline",
    title="NPS / Pipeline",
    description="Kafka consumers, the outboxes, the background jobs and the dead-letter topics.",
    rows=[
        RowSpec(
            "Consumers",
            [
                PanelSpec(
                    "Consumer batch time p95",
                    "Time to handle and commit one consumed batch, by consumer group.",
                    [Query(quantile(0.95, series("consumer_batch_seconds_bucket"), "group"), "{{group}}")],
                    unit="s",
                ),
                PanelSpec(
                    "Consumer batches",
                    "Batches handled and committed per second, by consumer group.",
                    [
                        Query(
                            per_second(series("consumer_batch_seconds_count"), "group"),
                            "{{group}}",
                        )
                    ],
                    unit="ops",
                ),
                PanelSpec(
                    "Consumer lag",
                    "Messages each consumer group has not committed yet, summed over its partitions "
                    "(every replica reports its group's lag: the max per partition is taken).",
                    [
                        Query(
                            "sum by (service, group) (max by (service, group, topic, partition) "
                            f"({series('consumer_lag_messages')}))",
                            "{{service}} {{group}}",
                        )
                    ],
                    width=24,
                ),
            ],
        ),
        RowSpec(
            "Outbox",
            [
                PanelSpec(
                    "Outbox pending",
                    "Events written with their state but not yet published to Kafka, by service.",
                    [Query(f"sum by (service) ({series('outbox_pending')})", "{{service}}")],
                ),
                PanelSpec(
                    "Outbox published",
                    "Events the relays published per second, by topic.",
                    [
                        Query(
                            f"sum by (topic) (rate({series('outbox_published_total')}[$__rate_interval]))",
                            "{{topic}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
        RowSpec(
            "Background jobs",
            [
                PanelSpec(
                    "Job runs",
                    "Cycles per second of each background job (relay, sender, reminders, SLA, ...).",
                    [
                        Query(
                            f"sum by (service, job) (rate({series('job_runs_total')}[$__rate_interval]))",
                            "{{service}} {{job}}",
                        )
                    ],
                    unit="ops",
                ),
                PanelSpec(
                    "Job errors",
                    "Failed cycles per second of each background job.",
                    [
                        Query(
                            f"sum by (service, job) (rate({series('job_errors_total')}[$__rate_interval]))",
                            "{{service}} {{job}}",
                        )
                    ],
                    unit="ops",
                ),
                PanelSpec(
                    "Oldest due item age",
                    "How long the oldest item due to each job has waited: the send queue, the outbox, "
                    "reminders, notifications. 0 when nothing is due.",
                    [
                        Query(
                            f"max by (service, job) ({series('job_oldest_due_age_seconds')})",
                            "{{service}} {{job}}",
                        )
                    ],
                    unit="s",
                ),
                PanelSpec(
                    "Job cycle time p95",
                    "95th percentile time of one cycle, by job.",
                    [
                        Query(
                            quantile(0.95, series("job_duration_seconds_bucket"), "service, job"),
                            "{{service}} {{job}}",
                        )
                    ],
                    unit="s",
                ),
                PanelSpec(
                    "Due items by job",
                    "How many items are due to each job now: the queue's depth (the send queue, the "
                    "outbox, reminders, notifications, SLA steps).",
                    [Query(f"max by (service, job) ({series('job_due_items')})", "{{service}} {{job}}")],
                ),
            ],
        ),
        RowSpec(
            "Dead letters",
            [
                PanelSpec(
                    "Dead-lettered messages",
                    "Messages sent to a DLQ topic in each interval, by topic and reason code.",
                    [
                        Query(
                            "sum by (topic, reason) "
                            f"(increase({series('dead_lettered_messages_total')}[$__rate_interval]))",
                            "{{topic}} {{reason}}",
                        )
                    ],
                ),
                PanelSpec(
                    "Dead letters since start",
                    "Messages each process has dead-lettered since it started, by topic and reason code.",
                    [
                        Query(
                            f"sum by (service, topic, reason) ({series('dead_lettered_messages_total')})",
                            instant=True,
                        )
                    ],
                    kind=Kind.TABLE,
                ),
            ],
        ),
    ],
)

# --- CX: NPS, responses, cases, SLA --------------------------------------------------------------

_RESPONSES = "nps_scoring_responses_total"
_ANSWERS = f"sum by (touchpoint) (increase({_RESPONSES}[$__range]))"


def _answers_of(category: str) -> str:
    selected = f'sum by (touchpoint) (increase({_RESPONSES}{{category="{category}"}}[$__range]))'
    return zero_when_absent(selected, _ANSWERS)


CX = DashboardSpec(
    uid="nps-cx",
    title="NPS / Customer experience",
    description="NPS, survey responses, invitations, follow-up cases and their SLA.",
    rows=[
        RowSpec(
            "NPS",
            [
                PanelSpec(
                    "NPS by touchpoint",
                    "Net Promoter Score of the answers counted in the dashboard's time range: % promoters "
                    "minus % detractors (the scoring API has the exact figure for any period).",
                    [
                        Query(
                            f"100 * ({_answers_of('promoter')} - {_answers_of('detractor')}) / {_ANSWERS}",
                            "{{touchpoint}}",
                        )
                    ],
                    unit="none",
                    kind=Kind.STAT,
                ),
                PanelSpec(
                    "Answers by touchpoint and category",
                    "Survey answers counted by scoring per interval.",
                    [
                        Query(
                            f"sum by (touchpoint, category) (increase({_RESPONSES}[$__rate_interval]))",
                            "{{touchpoint}} {{category}}",
                        )
                    ],
                ),
                PanelSpec(
                    "NPS of every answer, by touchpoint",
                    "The score of every answer counted so far (scoring's gauge, refreshed every "
                    "METRICS_REFRESH_SECONDS); summed over tenants unless METRICS_TENANT_LABELS is on.",
                    [Query("max by (tenant, touchpoint) (nps_scoring_nps)", "{{tenant}} {{touchpoint}}")],
                    unit="none",
                ),
            ],
        ),
        RowSpec(
            "Survey",
            [
                PanelSpec(
                    "Invitation emails by outcome",
                    "Invitation emails sent, retried and given up (failed) per interval.",
                    [Query(per_interval("nps_survey_emails_total", "outcome"), "{{outcome}}")],
                ),
                PanelSpec(
                    "Survey answers by kind",
                    "Answers recorded by the survey pages: a score, a replaced score, a follow-up.",
                    [Query(per_interval("nps_survey_responses_total", "kind"), "{{kind}}")],
                ),
            ],
        ),
        RowSpec(
            "Cases and SLA",
            [
                PanelSpec(
                    "Open cases nobody has contacted",
                    "As of the alerting service's last SLA check.",
                    [Query("sum(nps_alerting_open_cases)", "open")],
                    kind=Kind.STAT,
                    width=8,
                ),
                PanelSpec(
                    "Cases opened",
                    "Follow-up cases opened for detractors in the dashboard's time range.",
                    [Query("sum(increase(nps_alerting_cases_opened_total[$__range]))", "opened")],
                    kind=Kind.STAT,
                    width=8,
                ),
                PanelSpec(
                    "SLA breaches",
                    "Cases not contacted by their due time, in the dashboard's time range.",
                    [Query("sum(increase(nps_alerting_cases_breached_total[$__range]))", "breached")],
                    kind=Kind.STAT,
                    width=8,
                ),
                PanelSpec(
                    "Cases opened and breached",
                    "Per interval: cases opened, breached, and resolved by the customer changing their "
                    "score.",
                    [
                        Query(per_interval("nps_alerting_cases_opened_total"), "opened"),
                        Query(per_interval("nps_alerting_cases_breached_total"), "breached"),
                        Query(
                            per_interval("nps_alerting_cases_resolved_by_score_change_total"),
                            "resolved by score change",
                        ),
                    ],
                ),
                PanelSpec(
                    "Alert emails by outcome",
                    "Emails to case owners (new case, escalations) per interval, by kind and outcome.",
                    [
                        Query(
                            per_interval("nps_alerting_notifications_total", "kind, outcome"),
                            "{{kind}} {{outcome}}",
                        )
                    ],
                ),
                PanelSpec(
                    "Cases by SLA state now",
                    "Unresolved cases, those due within the hour and those past a deadline now, by "
                    "priority (as of the last check, every 5 s).",
                    [
                        Query("max by (priority) (nps_alerting_cases_unresolved)", "unresolved {{priority}}"),
                        Query(
                            "max by (priority) (nps_alerting_cases_due_within_hour)",
                            "due within 1 h {{priority}}",
                        ),
                        Query(
                            "max by (priority) (nps_alerting_cases_breached_now)", "breached now {{priority}}"
                        ),
                    ],
                    width=24,
                ),
            ],
        ),
    ],
)

DASHBOARDS: tuple[DashboardSpec, ...] = (PLATFORM, PIPELINE, CX)


def _panel(spec: PanelSpec, panel_id: int) -> Any:
    targets = []
    for index, query in enumerate(spec.queries):
        target = Dataquery().expr(query.expr).ref_id(chr(ord("A") + index)).datasource(DATASOURCE)
        target = target.legend_format(query.legend) if query.legend else target
        targets.append(target.instant().format(PromQueryFormat.TABLE) if query.instant else target.range())
    panel: Any
    if spec.kind is Kind.STAT:
        panel = (
            StatPanel()
            .graph_mode(common.BigValueGraphMode.AREA)
            .color_mode(common.BigValueColorMode.VALUE)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
    elif spec.kind is Kind.TABLE:
        panel = TablePanel().show_header(True)
    else:
        panel = TimeseriesPanel().legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    return (
        panel.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .span(spec.width)
        .height(8)
        .targets(targets)
    )


def build(spec: DashboardSpec) -> dict[str, Any]:
    """One dashboard as Grafana's JSON model."""
    dashboard = (
        Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .readonly()
    )
    panel_id = 0
    for row in spec.rows:
        panel_id += 1
        dashboard = dashboard.with_row(Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            dashboard = dashboard.with_panel(_panel(panel, panel_id))
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(dashboard.build()))
    return encoded


def render(spec: DashboardSpec) -> str:
    return json.dumps(build(spec), indent=2, sort_keys=True) + "\n"


def write(directory: Path = DASHBOARD_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in DASHBOARDS:
        path = directory / spec.filename
        path.write_text(render(spec))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="directory to write the JSON to")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
