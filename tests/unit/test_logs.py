"""What the JSON log handler writes: repeats held back with a count, personal data never."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

from libs.common.logs import RepeatFilter, json_handler, redact


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.{uuid.uuid4().hex}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _handler_with_clock(clock: Clock) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = json_handler("test", stream)
    repeat = next(f for f in handler.filters if isinstance(f, RepeatFilter))
    handler.removeFilter(repeat)
    # Same place as in json_handler: before redaction formats the message.
    handler.filters.insert(0, RepeatFilter(10.0, clock=clock))
    return handler, stream


def test_a_repeating_record_is_written_once_per_interval_with_the_count_left_out() -> None:
    clock = Clock()
    handler, stream = _handler_with_clock(clock)
    log = _logger(handler)
    for second in range(25):
        clock.now = 1000.0 + second
        for _ in range(40):
            log.warning("outbox.publish_failed", extra={"error": "KafkaConnectionError()"})
    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["outbox.publish_failed"] * 3
    assert "suppressed" not in lines[0]
    # 0..9 s: 400 records, one written; the one at 10 s carries the other 399.
    assert [line.get("suppressed") for line in lines[1:]] == [399, 399]


def test_a_template_with_changing_arguments_is_one_record() -> None:
    """aiokafka logs 'Unable connect to node with id %s: %s' with a new reason each time."""
    clock = Clock()
    handler, stream = _handler_with_clock(clock)
    log = _logger(handler)
    for attempt in range(100):
        log.error("Unable connect to node with id %s: %s", 0, f"[Errno 111] attempt {attempt}")
    clock.now += 10
    log.error("Unable connect to node with id %s: %s", 0, "[Errno 111] Connection refused")
    lines = _lines(stream)
    assert [line["event"] for line in lines] == [
        "Unable connect to node with id 0: [Errno 111] attempt 0",
        "Unable connect to node with id 0: [Errno 111] Connection refused",
    ]
    assert lines[1]["suppressed"] == 99


def test_different_events_loggers_and_levels_are_not_held_back() -> None:
    clock = Clock()
    handler, stream = _handler_with_clock(clock)
    first, second = _logger(handler), _logger(handler)
    first.warning("consumer.retrying")
    first.warning("outbox.publish_failed")
    first.error("consumer.retrying")
    second.warning("consumer.retrying")
    assert len(_lines(stream)) == 4


def test_information_records_are_never_held_back() -> None:
    """One ``invitation.sent`` per email is the record of what happened, not a flood."""
    clock = Clock()
    handler, stream = _handler_with_clock(clock)
    log = _logger(handler)
    for _ in range(50):
        log.info("invitation.sent")
    assert len(_lines(stream)) == 50


def test_aiokafka_records_are_held_back_too() -> None:
    """The flood while the broker is down comes from aiokafka's own loggers as much as ours."""
    stream = io.StringIO()
    handler = json_handler("test", stream)
    aiokafka_log = logging.getLogger("aiokafka.conn")
    saved = aiokafka_log.handlers[:], aiokafka_log.propagate
    aiokafka_log.handlers[:] = [handler]
    aiokafka_log.propagate = False
    try:
        for _ in range(500):
            aiokafka_log.error("Unable connect to %r: %s", "127.0.0.1:9092", "Connect call failed")
    finally:
        aiokafka_log.handlers[:], aiokafka_log.propagate = saved
    assert len(_lines(stream)) == 1


def test_an_exception_carrying_an_address_is_logged_without_it() -> None:
    stream = io.StringIO()
    log = _logger(json_handler("test", stream))
    try:
        raise ValueError("no such recipient jane@example.com")
    except ValueError:
        log.exception("invitation.send_failed")
    [line] = _lines(stream)
    assert "jane@example.com" not in stream.getvalue()
    assert "ValueError: no such recipient <email>" in line["exc_info"]


def test_a_stack_carrying_an_address_is_logged_without_it() -> None:
    stream = io.StringIO()
    log = _logger(json_handler("test", stream))

    def send_to(address: str) -> None:
        log.warning("invitation.slow", stack_info=True)

    send_to("jane@example.com")
    assert "jane@example.com" not in stream.getvalue()
    [line] = _lines(stream)
    assert "send_to" in line["stack_info"]


def test_an_address_in_a_long_query_string_is_masked() -> None:
    # The export's calls name a hundred ids in the query; httpx logs each URL at INFO.
    ids = "&".join(f"response_id={uuid.uuid4()}" for _ in range(100))
    line = f"HTTP Request: GET http://127.0.0.1:8003/data?{ids}&email=jane.doe+nps@example.co.uk&x=1"
    masked = redact(line)
    assert "jane" not in masked and "example.co.uk" not in masked and "<email>&x=1" in masked
    # The characters an address may hold run through the query: at most the 64 a local part may
    # have go with it, never the whole line.
    assert masked.startswith(line[: len(line) - len("jane.doe+nps@example.co.uk&x=1") - 64])
