"""Sending email over SMTP, configured by one URL.

``SMTP_URL`` forms: ``smtp://host:port`` (plain, as the dev sink), ``smtp://user:pass@host:587``
(STARTTLS when the server offers it), ``smtps://user:pass@host:465`` (implicit TLS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib
from prometheus_client import Histogram

_histograms: dict[str, Histogram] = {}


def smtp_histogram(service: str) -> Histogram:
    """``nps_<service>_smtp_send_seconds{outcome}``: one SMTP conversation, from connecting to the
    server's last answer, by outcome (``sent``, ``permanent``: a 5xx, ``temporary``: anything else
    that failed). One per process and service: Prometheus refuses to register a name twice."""
    if service not in _histograms:
        _histograms[service] = Histogram(
            f"nps_{service}_smtp_send_seconds",
            "Time one SMTP send took, by outcome",
            ["outcome"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
    return _histograms[service]


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("SMTP_URL has no host")
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit_tls,
        )


class DeliveryError(Exception):
    """``permanent``: a 5xx answer, retrying cannot help. ``recipient_refused``: the server refused
    the address itself (e.g. 550 no such user), which is a hard bounce."""

    def __init__(
        self, message: str, *, permanent: bool, code: int | None = None, recipient_refused: bool = False
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.recipient_refused = recipient_refused


async def send_email(
    target: SmtpTarget,
    message: EmailMessage | bytes,
    *,
    timeout_seconds: float = 30.0,
    sender: str | None = None,
    recipients: list[str] | None = None,
    local_hostname: str | None = None,
    timing: Histogram | None = None,
) -> None:
    """Send one message. Raises :class:`DeliveryError`; ``permanent`` is true for a 5xx answer.
    With ``timing`` (:func:`smtp_histogram`), the send's duration is observed by outcome.

    A message given as bytes (e.g. DKIM-signed, which must go out byte for byte) needs ``sender``
    and ``recipients``. ``local_hostname`` is the EHLO name; without it aiosmtplib asks
    ``socket.getfqdn()`` on every connection, a DNS lookup in a thread each time.
    """
    started = time.perf_counter()
    outcome = "temporary"
    try:
        await _send(message, target, timeout_seconds, sender, recipients, local_hostname)
        outcome = "sent"
    except DeliveryError as error:
        outcome = "permanent" if error.permanent else "temporary"
        raise
    finally:
        if timing is not None:
            timing.labels(outcome).observe(time.perf_counter() - started)


async def _send(
    message: EmailMessage | bytes,
    target: SmtpTarget,
    timeout_seconds: float,
    sender: str | None,
    recipients: list[str] | None,
    local_hostname: str | None,
) -> None:
    try:
        await aiosmtplib.send(
            message,
            sender=sender,
            recipients=recipients,
            local_hostname=local_hostname,
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=None if not target.use_tls else False,
            timeout=timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [r.code for r in error.recipients]
        permanent = all(500 <= c < 600 for c in codes)
        raise DeliveryError(
            f"recipient refused: {codes}",
            permanent=permanent,
            code=codes[0] if codes else None,
            recipient_refused=permanent,
        ) from None
    except aiosmtplib.SMTPResponseException as error:
        raise DeliveryError(
            f"SMTP {error.code}: {error.message[:200]}", permanent=500 <= error.code < 600, code=error.code
        ) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise DeliveryError(f"SMTP unavailable: {type(error).__name__}", permanent=False) from None
