"""End to end: one purchase's trace, from its HTTP request to the follow-up case, as an operator's
tracing backend receives it. The stack is started as `make run` starts it, exporting over OTLP/HTTP
to a real receiver inside the test (tests/support/otlp.py)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from libs.common import topics
from libs.common.events import FOLLOWUP_OPENED, SURVEY_RESPONDED
from tests.conftest import eventually
from tests.support.factories import purchase
from tests.support.otlp import ReceivedSpan, Receiver, otlp_receiver
from tests.support.stack import Stack, new_tenant, stack_launcher, stop

SERVER, CONSUMER = 2, 5  # OTLP Span.SpanKind


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    launcher = stack_launcher(
        tmp_path_factory.mktemp("stack"),
        # A short batch delay, so spans arrive while the test waits rather than after it.
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"},
    )
    try:
        started = launcher.start()
        yield started
    finally:
        stop(launcher.processes)


def survey_links(message: EmailMessage) -> list[str]:
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    return re.findall(r'href="(https?://[^"]+/s/[^"]+/(?:10|[0-9]))"', html.get_content())


async def test_one_trace_runs_from_the_purchase_to_the_case(stack: Stack, receiver: Receiver) -> None:
    trigger, alerting = stack.urls["trigger"], stack.urls["alerting"]
    async with httpx.AsyncClient(timeout=15) as client:
        auth = await new_tenant(client, stack)
        await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)

        # The shop's own request is traced: the platform continues the trace it names.
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        customer, email = f"c-{uuid.uuid4().hex[:8]}", f"jane-{uuid.uuid4().hex[:6]}@example.com"
        posted = await client.post(
            f"{trigger}/v1/events",
            json=purchase(customer, email=email),
            headers={**auth, "traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "shop=1"},
        )
        assert posted.status_code == 202 and posted.json()["results"][0]["decision"] == "invited"

        # A malformed traceparent is ignored: the request is served, in a trace of its own.
        other, other_email = f"c-{uuid.uuid4().hex[:8]}", f"joe-{uuid.uuid4().hex[:6]}@example.com"
        untraced = await client.post(
            f"{trigger}/v1/events",
            json=purchase(other, email=other_email),
            headers={**auth, "traceparent": "00-not-a-trace-context-01"},
        )
        assert untraced.status_code == 202 and untraced.json()["results"][0]["decision"] == "invited"

        # The email, a click on 3 (the person's browser sends no trace context), and the case.
        [message] = await eventually(lambda: _mail(stack, email), within=30)
        token_url = survey_links(message)[3].rsplit("/", 1)[0]
        answered = await client.post(token_url, data={"score": "3"})
        assert answered.status_code == 200

        async def case_opened() -> Any:
            cases = (await client.get(f"{alerting}/v1/cases", headers=auth)).json()["cases"]
            return [case for case in cases if case["customer_id"] == customer]

        [case] = await eventually(case_opened, within=30)
        assert case["status"] == "open"

    def the_whole_trace() -> list[ReceivedSpan] | None:
        spans = receiver.of_trace(trace_id)
        services = {span.service for span in spans}
        names = {span.name for span in spans}
        answered_in = {span.service for span in spans if _handled(span, SURVEY_RESPONDED)}
        # Each process exports its spans in batches of its own: wait for every span asserted below.
        alerting_groups = {
            span.attributes.get("messaging.consumer.group.name")
            for span in spans
            if span.service == "nps-alerting" and _handled(span, SURVEY_RESPONDED)
        }
        whole = (
            {"nps-trigger", "nps-survey", "nps-scoring", "nps-alerting"} <= services
            and {"survey send", "survey sent", "survey answer"} <= names
            and {"nps-scoring", "nps-alerting"} <= answered_in
            and len(alerting_groups) == 2
            and any(span.kind == CONSUMER and span.service == "nps-survey" for span in spans)
            and any(_handled(span, FOLLOWUP_OPENED) for span in spans)
        )
        return spans if whole else None

    spans = await eventually(_sync(the_whole_trace), within=30)
    by_service: dict[str, set[str]] = {}
    for span in spans:
        by_service.setdefault(span.service, set()).add(span.name)
    # The purchase's request, continued from the shop's span.
    [request] = [span for span in spans if span.kind == SERVER and span.service == "nps-trigger"]
    assert request.name == "POST /v1/events" and request.parent_span_id == caller_span
    # The survey request consumed, the email sent, the answer, its scoring, and the case opened.
    assert any(span.kind == CONSUMER for span in spans if span.service == "nps-survey"), by_service
    assert {"survey send", "survey sent", "survey answer"} <= by_service["nps-survey"], by_service
    # Alerting reads the answer twice, for its cases and for its outbound webhooks, in two groups.
    consumed_answer = [s for s in spans if s.service == "nps-alerting" and _handled(s, SURVEY_RESPONDED)]
    groups = {str(span.attributes["messaging.consumer.group.name"]): span for span in consumed_answer}
    assert len(consumed_answer) == len(groups) == 2, groups
    [opened] = [span for group, span in groups.items() if group.endswith("followups")]
    assert opened.kind == CONSUMER and opened.attributes["messaging.destination.name"] == topics.SURVEY_EVENTS
    # The case it opened (followup.opened) is consumed in the same trace, under that span.
    assert any(_handled(span, FOLLOWUP_OPENED) and span.parent_span_id == opened.span_id for span in spans)
    # Every span has a parent in the trace except the request, whose parent is the shop's.
    ids = {span.span_id for span in spans}
    assert all(span.parent_span_id in ids for span in spans if span is not request), by_service

    # The relay's publishes are linked to the trace; the sender's cycle that sent the email has its span.
    assert any(span.name == "outbox publish" and trace_id in span.links for span in receiver.spans)
    assert any(span.name == "job survey-sender" and span.service == "nps-survey" for span in receiver.spans)

    # The malformed context started a new trace of its own, with the request as its root.
    roots = [
        span
        for span in receiver.spans
        if span.name == "POST /v1/events" and span.parent_span_id == "" and span.trace_id != trace_id
    ]
    assert len(roots) == 1 and re.fullmatch(r"[0-9a-f]{32}", roots[0].trace_id)
    assert roots[0].trace_id != "0" * 32

    # No span anywhere carries an email address or a survey token.
    token = token_url.rsplit("/", 1)[1]
    for span in receiver.spans:
        shown = f"{span.name} {span.attributes}"
        assert "@" not in shown and token not in shown, span


async def _key_works_everywhere(client: httpx.AsyncClient, stack: Stack, auth: dict[str, str]) -> bool:
    paths = [
        f"{stack.urls['survey']}/v1/invitations?customer=x",
        f"{stack.urls['scoring']}/v1/nps",
        f"{stack.urls['alerting']}/v1/cases",
    ]
    statuses = [(await client.get(path, headers=auth)).status_code for path in paths]
    return statuses == [200] * len(paths)


def _handled(span: ReceivedSpan, event_type: str) -> bool:
    """Whether the span is a consumed batch that held an event of ``event_type``."""
    return event_type in span.attributes.get("nps.event_types", ())


async def _mail(stack: Stack, address: str) -> list[EmailMessage]:
    return stack.mail_to(address)


def _sync(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run
