"""Structured JSON logs. Email addresses and survey tokens are masked before anything is written,
and a record that repeats (a dependency that is down) is written at most once per interval."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

# The local part is at most 64 characters (RFC 5321). Unbounded, the pattern is quadratic in a
# long run of its characters, such as a URL's query string of ids: 66 ms for one 5 KB log line.
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]+(?:\.[\w-]+)+")
# Survey tokens, sign-in links and API key secrets are long url-safe strings; paths like /s/<token>
# and /signin/<token> carry them.
_TOKEN_PATH = re.compile(r"(/s/|/signin/)[A-Za-z0-9_-]{16,}")
_API_KEY = re.compile(r"\bnps_[a-f0-9]{16}_[A-Za-z0-9_-]{20,}")

#: How long a repeating record (same logger, event or message template, level) stays quiet.
REPEAT_INTERVAL_S = 10.0

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def redact(text: str) -> str:
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    text = _API_KEY.sub("<api-key>", text)
    return _TOKEN_PATH.sub(r"\1<token>", text)


class RedactingFilter(logging.Filter):
    """A safety net: code should not log personal data, and if it does, this masks it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class RepeatFilter(logging.Filter):
    """Lets through at most one warning or error per (logger, message template, level) per `interval`.

    A database or broker that is down makes every retry loop, and aiokafka's connection code, log
    the same line many times a second. The first record of a run is written; the repeats inside
    the interval are counted, and the next record written after it carries ``suppressed``: how
    many were left out. It keys on the template (``record.msg`` before ``%`` formatting, the
    dotted event name for our own logs), so "Unable connect to node 0: ..." with a changing
    reason still counts as one line. It must run before anything that formats the message.
    Records below `min_level` pass untouched: ``invitation.sent`` once per email is the record of
    what happened, not a flood.
    """

    def __init__(
        self,
        interval: float = REPEAT_INTERVAL_S,
        *,
        min_level: int = logging.WARNING,
        max_keys: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.min_level = min_level
        self._max_keys = max_keys
        self._clock = clock
        # key -> (when the last record was let through, how many were suppressed since)
        self._seen: OrderedDict[tuple[str, str, int], tuple[float, int]] = OrderedDict()
        # Handlers are called from aiokafka's and uvicorn's threads too.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, str(record.msg)[:200], record.levelno)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval:
                self._seen[key] = (seen[0], seen[1] + 1)
                return False
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            while len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
        if seen is not None and seen[1]:
            record.suppressed = seen[1]
        return True


class RedactingJsonFormatter(JsonFormatter):
    """Tracebacks and stacks are redacted too: an exception's text can carry an address."""

    def formatException(self, ei: _ExcInfo) -> str:
        return redact(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:
        return redact(str(super().formatStack(stack_info)))


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def json_handler(service: str, stream: IO[str] | None = None) -> logging.Handler:
    """The handler every service logs through: JSON lines, repeats held back, personal data masked."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "message": "event"},
            static_fields={"service": service},
        )
    )
    # In this order: the repeat filter keys on the unformatted template, which redaction replaces.
    handler.addFilter(RepeatFilter())
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = json_handler(service)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def log_fields(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call: structured fields next to the dotted event name."""
    return fields
