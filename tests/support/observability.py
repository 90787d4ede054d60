"""The observability files as an operator deploys them: the generated dashboards, the Grafana
provisioning and the Prometheus alert rules, read the way Grafana and Prometheus read them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
RULE_DIR = DEPLOY / "prometheus" / "rules"
RULE_TEST_DIR = DEPLOY / "prometheus" / "tests"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    """Every committed dashboard by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The panels that show data (rows only group them), including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries() -> list[PanelQuery]:
    return [
        PanelQuery(dashboard["title"], panel["title"], target["expr"])
        for dashboard in dashboards().values()
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def datasource_uid() -> str:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    [prometheus] = [source for source in provisioned["datasources"] if source["type"] == "prometheus"]
    return str(prometheus["uid"])


def rule_files() -> list[Path]:
    return sorted(RULE_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def with_concrete_ranges(expr: str, *, rate_interval: str, dashboard_range: str) -> str:
    """A panel's query as Grafana sends it to Prometheus: its range variables replaced."""
    return expr.replace("$__rate_interval", rate_interval).replace("$__range", dashboard_range)
