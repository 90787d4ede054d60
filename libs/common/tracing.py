"""Distributed tracing: one trace from a purchase to the follow-up case it led to.

Every hop carries a W3C trace context. On HTTP it is the ``traceparent`` / ``tracestate`` headers
(accepted by :class:`TraceRequests`, sent by the outbound webhook client); on Kafka it is the
CloudEvents Distributed Tracing extension, the ``traceparent`` / ``tracestate`` attributes of the
event envelope (:class:`libs.common.events.Envelope`). An event written to the outbox takes the
context current where it was emitted (:func:`libs.common.db.outbox_row`), so the relay publishes
it with the context of the message or request being handled. A hop that waits in a table (an
invitation until it is sent, then until it is answered) keeps the context in a column of its own.

Spans are made with the OpenTelemetry API. They are exported over OTLP/HTTP only when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; without it the
API's no-op tracer is left in place, which still passes incoming contexts on, at next to no cost.
Span attributes never carry personal data: tenant, touchpoint, event type, topic and partition only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

__all__ = [
    "PROPAGATOR",
    "TRACEPARENT",
    "TRACESTATE",
    "AttributeValue",
    "Carrier",
    "Span",
    "SpanKind",
    "carrier",
    "carrier_of",
    "configure",
    "consuming",
    "context_of",
    "link_to",
    "links_to",
    "record_span",
    "recording",
    "shutdown",
    "span",
]
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

log = logging.getLogger(__name__)

#: W3C Trace Context on both kinds of hop: the CloudEvents extension names the same two fields.
PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: What a stored or carried context may hold: the two W3C fields, nothing else.
Carrier = Mapping[str, str]

_tracer = trace.get_tracer("nps")
_provider: Any = None
_last_carrier: tuple[trace.SpanContext, dict[str, str]] | None = None


def configure(service: str) -> bool:
    """Export spans over OTLP/HTTP if an endpoint is configured; returns whether it is. Called once
    per process by the service's entry point (``python -m services.<name>``)."""
    global _provider
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not any(os.environ.get(name) for name in endpoints):
        return False
    # Imported here: a process that exports nothing never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or f"nps-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    # The exporter and the processor read the other OTEL_EXPORTER_OTLP_* and OTEL_BSP_* settings.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing.exporting", extra={"service_name": name})
    return True


def shutdown() -> None:
    """Export what is still buffered; a clean stop loses no span."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def context_of(carrier: Carrier | None) -> otel_context.Context:
    """The context a carrier names. A missing or malformed ``traceparent`` gives the empty context,
    so the work starts a trace of its own rather than failing."""
    if not carrier:
        return otel_context.Context()
    return PROPAGATOR.extract(carrier, context=otel_context.Context())


def carrier(context: otel_context.Context | None = None) -> dict[str, str]:
    """The current (or the given) context as ``traceparent`` / ``tracestate``; empty if none.

    Outside any trace this is one context lookup; inside one, the last span's carrier is reused, as
    a batch handler asks once per event it emits, all in the batch's span."""
    global _last_carrier
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return {}
    if _last_carrier is not None and _last_carrier[0] == span_context:
        return dict(_last_carrier[1])
    out: dict[str, str] = {}
    PROPAGATOR.inject(out, context=trace.set_span_in_context(trace.NonRecordingSpan(span_context)))
    _last_carrier = (span_context, out)
    return dict(out)


def carrier_of(fields: Any) -> dict[str, str] | None:
    """The trace context an envelope (its model, its JSON object, or anything with the two
    attributes) carries, or None."""
    if isinstance(fields, Mapping):
        parent, state = fields.get(TRACEPARENT), fields.get(TRACESTATE)
    else:
        parent, state = getattr(fields, TRACEPARENT, None), getattr(fields, TRACESTATE, None)
    if not isinstance(parent, str) or not parent:
        return None
    found = {TRACEPARENT: parent}
    if isinstance(state, str) and state:
        found[TRACESTATE] = state
    return found


def link_to(carrier: Carrier | None) -> Link | None:
    context = trace.get_current_span(context_of(carrier)).get_span_context()
    return Link(context) if context.is_valid else None


def links_to(carriers: Iterable[Carrier | None], *, limit: int = 64) -> list[Link]:
    """Links to the distinct contexts among ``carriers`` (at most ``limit``)."""
    seen: set[tuple[int, int]] = set()
    links: list[Link] = []
    for item in carriers:
        link = link_to(item)
        if link is None:
            continue
        key = (link.context.trace_id, link.context.span_id)
        if key in seen:
            continue
        seen.add(key)
        links.append(link)
        if len(links) >= limit:
            break
    return links


@contextmanager
def span(
    name: str,
    *,
    parent: Carrier | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Iterable[Link] = (),
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A span that is current inside the block: under ``parent`` when given (a stored or carried
    context; a malformed one starts a new trace), else under the current span. An exception that
    leaves the block marks the span as an error (its type only: messages may hold personal data)."""
    context = context_of(parent) if parent is not None else None
    with _tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        links=list(links),
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as error:
            current.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise


@contextmanager
def consuming(
    name: str, carriers: Sequence[Carrier | None], *, attributes: Mapping[str, AttributeValue] | None = None
) -> Iterator[Span]:
    """The span of one consumed batch: a child of the first traced message's context, linked to the
    others'. A batch of one (the usual case below saturation) continues its message's trace
    exactly; what a larger batch emits continues the first message's trace."""
    first = next((item for item in carriers if item), None)
    links = links_to(carriers[1:]) if len(carriers) > 1 and recording() else []
    kind = SpanKind.CONSUMER
    with span(name, parent=first or {}, kind=kind, links=links, attributes=attributes) as current:
        yield current


def record_span(
    name: str,
    *,
    start_ns: int,
    attributes: Mapping[str, AttributeValue] | None = None,
    error: BaseException | None = None,
) -> None:
    """A span for work that has already happened (from ``start_ns`` to now), with no parent: for
    the job runner, which knows only afterwards whether a cycle worked on anything."""
    done = _tracer.start_span(
        name, context=otel_context.Context(), attributes=attributes, start_time=start_ns
    )
    if error is not None:
        done.set_status(Status(StatusCode.ERROR, type(error).__name__))
    done.end()


def recording() -> bool:
    """Whether spans are being recorded (an exporter is configured); callers skip work for spans
    that only a recording tracer would keep."""
    return _provider is not None
