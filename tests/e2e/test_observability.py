"""Every dashboard panel shows data and every alert rule evaluates, against a real Prometheus (Debian's
binary) scraping the whole stack as `make run` starts it, under a small real load: purchases, a
survey answered with a low score (a case, an alert email) and one poison message (a DLQ entry)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from libs.common import topics
from libs.devstack.ports import free_port
from tests.conftest import eventually, produce
from tests.support.factories import purchase
from tests.support.observability import (
    DEPLOY,
    RULE_DIR,
    panel_queries,
    rule_files,
    rules,
    with_concrete_ranges,
)
from tests.support.stack import Stack, new_tenant

pytestmark = pytest.mark.e2e

PROMETHEUS = "/usr/bin/prometheus"
#: What Grafana would put for $__rate_interval and $__range: both cover the whole short run.
RATE_INTERVAL, DASHBOARD_RANGE = "1m", "10m"


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    # The session's shared stack (tests/e2e/conftest.py): the owner's alert email goes out 3 s after
    # the answer rather than 2 minutes. The load this test puts through is its own tenant's.
    return shared_stack


def prometheus_config(stack: Stack) -> dict[str, Any]:
    """deploy/prometheus.yml as shipped, pointed at this stack's ports, scraping every second and
    loading the rule files from the repository."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULE_DIR / "*.yml")]
    [job] = config["scrape_configs"]
    job["scrape_interval"] = "1s"
    for target in job["static_configs"]:
        target["targets"] = [urlsplit(stack.urls[target["labels"]["service"]]).netloc]
    return config


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prometheus")
    (home / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(stack)))
    address = f"127.0.0.1:{free_port()}"
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        yield f"http://{address}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as http:
        yield http


async def query(client: httpx.AsyncClient, prometheus: str, expr: str) -> dict[str, Any]:
    """An instant query through Prometheus' HTTP API: its whole answer (status, data or error)."""
    answer = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    return answer.json()  # type: ignore[no-any-return]


async def result(client: httpx.AsyncClient, prometheus: str, expr: str) -> list[Any]:
    answer = await query(client, prometheus, expr)
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    return answer["data"]["result"]  # type: ignore[no-any-return]


async def test_every_panel_shows_data_and_every_rule_evaluates(
    stack: Stack, prometheus: str, client: httpx.AsyncClient
) -> None:
    # Prometheus is up and scrapes all five services.
    async def all_scraped() -> bool:
        try:
            # Until its storage is open, Prometheus answers 503 in plain text.
            if (await client.get(f"{prometheus}/-/ready")).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
        return len(await result(client, prometheus, 'up{job="nps"} == 1')) == 5

    await eventually(all_scraped, within=30, interval=0.5)

    await put_a_small_load_through(stack, client)

    # The load reached Prometheus: a case opened, a message dead-lettered, an alert email sent, each
    # scraped a few times since (a rate needs two samples of a series).
    for selector in (
        "nps_alerting_cases_opened_total",
        'nps_trigger_dead_lettered_messages_total{topic="nps.purchases"}',
        'nps_alerting_notifications_total{outcome="sent"}',
        "nps_scoring_responses_total",
    ):
        scraped = f"count_over_time({selector}[1m]) >= 3 and {selector} > 0"
        await eventually(partial(result, client, prometheus, scraped), within=30, interval=0.5)
    # The score gauge is refreshed every METRICS_REFRESH_SECONDS (15), not as answers come, and the
    # load's NPS (one 3, one 10) is 0.
    scored = "count_over_time(nps_scoring_answers[1m]) >= 3 and nps_scoring_answers > 0"
    await eventually(partial(result, client, prometheus, scored), within=45, interval=0.5)

    queries = panel_queries()
    assert len(queries) >= 25
    shown: dict[str, list[Any]] = {}
    for panel in queries:
        expr = with_concrete_ranges(panel.expr, rate_interval=RATE_INTERVAL, dashboard_range=DASHBOARD_RANGE)
        shown[f"{panel.dashboard} / {panel.panel}: {expr}"] = await result(client, prometheus, expr)
    empty = [name for name, series in shown.items() if not series]
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # What an operator reads off three of them: all five up, the poison message, the case.
    def panel_shows(title: str) -> list[Any]:
        [series] = [series for name, series in shown.items() if f"/ {title}: " in name]
        return series

    assert sorted((s["metric"]["service"], s["value"][1]) for s in panel_shows("Services up")) == [
        (service, "1") for service in sorted(stack.urls)
    ]
    dead = {(s["metric"]["service"], s["metric"]["topic"]) for s in panel_shows("Dead letters since start")}
    assert ("trigger", topics.PURCHASES) in dead
    [opened] = panel_shows("Cases opened")
    assert float(opened["value"][1]) >= 1
    # The services' own `job` label survives the scrape (not renamed `exported_job`), so the job
    # panels tell the outbox relay from the survey sender.
    jobs = {(s["metric"]["service"], s["metric"]["job"]) for s in panel_shows("Due items by job")}
    assert {("trigger", "outbox-relay"), ("survey", "survey-sender")} <= jobs
    # Every service's consumer groups have a lag, per the Pipeline dashboard.
    lagging = {s["metric"]["service"] for s in panel_shows("Consumer lag")}
    assert {"trigger", "survey", "scoring", "alerting", "reporting"} <= lagging

    for rule in rules():
        answer = await query(client, prometheus, rule["expr"])
        assert answer["status"] == "success", f"{rule['alert']}: {answer.get('error')}"

    # Prometheus loaded every rule file and has evaluated each rule without an error.
    expected = {rule["alert"] for rule in rules()}

    async def rules_healthy() -> dict[str, Any] | None:
        groups = (await client.get(f"{prometheus}/api/v1/rules")).json()["data"]["groups"]
        loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
        files = {Path(group["file"]).name for group in groups}
        ok = files == {path.name for path in rule_files()} and loaded.keys() == expected
        return loaded if ok and all(rule["health"] == "ok" for rule in loaded.values()) else None

    loaded = await eventually(rules_healthy, within=15, interval=0.5)
    assert all(not rule.get("lastError") for rule in loaded.values())


async def put_a_small_load_through(stack: Stack, client: httpx.AsyncClient) -> None:
    trigger = stack.urls["trigger"]
    owner = f"owner-{uuid.uuid4().hex[:6]}@shop.example"
    auth = await new_tenant(client, stack, owner_email=owner)
    await eventually(lambda: key_works_everywhere(client, stack, auth), within=30)

    customers = [(f"c-{uuid.uuid4().hex[:8]}", f"buyer-{uuid.uuid4().hex[:6]}@example.com") for _ in range(3)]
    for customer, email in customers:
        posted = await client.post(
            f"{trigger}/v1/events", json=purchase(customer, email=email, locale="en-GB"), headers=auth
        )
        assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited"

    # A detractor (a case, and an email to the owner) and a promoter.
    for (_, email), score in zip(customers, ("3", "10"), strict=False):
        [message] = await eventually(partial(mail, stack, email), within=30)
        token_url = survey_link(message).rsplit("/", 1)[0]
        assert (await client.post(token_url, data={"score": score})).status_code == 200
    await eventually(lambda: mail(stack, owner), within=30)

    # A message no consumer can read.
    await produce(stack.state()["kafka"], topics.PURCHASES, b"not json {", key=b"poison")


async def key_works_everywhere(client: httpx.AsyncClient, stack: Stack, auth: dict[str, str]) -> bool:
    paths = [
        f"{stack.urls['survey']}/v1/invitations?customer=x",
        f"{stack.urls['scoring']}/v1/nps",
        f"{stack.urls['alerting']}/v1/cases",
        f"{stack.urls['reporting']}/v1/reports/summary",
    ]
    return [(await client.get(path, headers=auth)).status_code for path in paths] == [200] * len(paths)


async def mail(stack: Stack, address: str) -> list[EmailMessage]:
    await asyncio.sleep(0)
    return stack.mail_to(address)


def survey_link(message: EmailMessage) -> str:
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    [first, *_] = re.findall(r'href="(https?://[^"]+/s/[^"]+/(?:10|[0-9]))"', html.get_content())
    return str(first)
