"""The Prometheus alert rules (deploy/prometheus/rules/) are valid, say what to do, and behave as
their promtool unit tests (deploy/prometheus/tests/) describe: each fires in one case and stays
quiet in another."""

from __future__ import annotations

import subprocess
from collections import defaultdict

import pytest
import yaml

from tests.support.observability import DEPLOY, RULE_TEST_DIR, rule_files, rules

pytestmark = pytest.mark.unit

PROMTOOL = "/usr/bin/promtool"
#: What the issue asks an on-call engineer to be told about.
EXPECTED_ALERTS = {
    "NpsServiceDown",
    "NpsServiceNotReady",
    "NpsHighErrorRate",
    "NpsDeadLettersGrowing",
    "NpsConsumerFallingBehind",
    "NpsConsumerLagGrowing",
    "NpsOutboxBacklogGrowing",
    "NpsQueueAging",
    "NpsJobFailing",
    "NpsInvitationsFailing",
    "NpsSlaBreached",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=DEPLOY.parent, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rule_files() -> None:
    checked = promtool("check", "rules", *map(str, rule_files()))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_prometheus_config_loads_the_rules() -> None:
    checked = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for path in rule_files():
        assert path.name in checked.stdout, f"deploy/prometheus.yml does not load {path.name}"


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", *map(str, sorted(RULE_TEST_DIR.glob("*.yml"))))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_wait_a_severity_and_a_runbook() -> None:
    alerts = [rule for rule in rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == EXPECTED_ALERTS
    for rule in alerts:
        assert rule.get("for"), f"{rule['alert']} has no for:"
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{rule['alert']} has no {key}"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = defaultdict(set)
    for path in RULE_TEST_DIR.glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                cases[check["alertname"]].add(bool(check.get("exp_alerts")))
    for alert in EXPECTED_ALERTS:
        assert cases[alert] == {True, False}, f"{alert}: tested firing/not firing = {cases[alert]}"
