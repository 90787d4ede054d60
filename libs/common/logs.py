"""Structured JSON logs. Email addresses and survey tokens are masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# Survey tokens and API key secrets are long url-safe strings; paths like /s/<token> carry them.
_TOKEN_PATH = re.compile(r"(/s/)[A-Za-z0-9_-]{16,}")
_API_KEY = re.compile(r"\bnps_[a-f0-9]{16}_[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
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


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "message": "event"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(RedactingFilter())
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
