"""The Grafana dashboards are code (libs/devstack/dashboards.py): the committed JSON is exactly what
the generator builds, and every dashboard is one Grafana can provision and query."""

from __future__ import annotations

import re

import pytest
import yaml

from libs.devstack import dashboards as generator
from tests.support.observability import (
    DASHBOARD_DIR,
    PROVISIONING,
    dashboards,
    datasource_uid,
    panels,
)

pytestmark = pytest.mark.unit


def test_the_committed_dashboards_are_what_the_generator_builds() -> None:
    expected = {spec.filename: generator.render(spec) for spec in generator.DASHBOARDS}
    committed = {path.name: path.read_text() for path in DASHBOARD_DIR.glob("*.json")}
    assert committed.keys() == expected.keys(), "run `make dashboards` and commit the result"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} differs from the generator: run `make dashboards`"


def test_there_is_a_platform_a_pipeline_and_a_cx_dashboard() -> None:
    titles = sorted(dashboard["title"] for dashboard in dashboards().values())
    assert titles == ["NPS / Customer experience", "NPS / Pipeline", "NPS / Platform overview"]


def test_every_dashboard_is_grafana_json_reading_the_provisioned_datasource() -> None:
    uid = datasource_uid()
    uids = [dashboard["uid"] for dashboard in dashboards().values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards().items():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), name
        assert dashboard["title"] and dashboard["schemaVersion"] >= 36, name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(set(ids)) == len(ids) and 0 not in ids, f"{name}: panel ids must be unique"
        shown = list(panels(dashboard))
        assert shown, f"{name} has no panel"
        for panel in shown:
            where = f"{name} / {panel['title']}"
            assert panel["type"] in {"timeseries", "stat", "table"}, where
            assert panel["title"] and panel["description"], where
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            assert panel["targets"], f"{where} has no query"
            assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"]), where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid and target["expr"].strip(), where


def test_grafana_provisions_the_dashboards_from_where_they_are_mounted() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "dashboards" / "nps.yml").read_text())
    [provider] = provisioned["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
