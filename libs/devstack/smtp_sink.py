"""An SMTP server that accepts every message and stores it as an `.eml` file: the dev and test mailbox.

As a process: `python -m libs.devstack.smtp_sink --dir .data/mail --host 127.0.0.1 --port 1025`.
In-process (tests): `SmtpSink(mail_dir, port=...)` with `start()` / `stop()`.
Reading back: `read_messages(mail_dir)`, or `messages_to(mail_dir, address)` to poll for one person's mail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from libs.devstack.ports import free_port

__all__ = [
    "MailboxHandler",
    "SmtpSink",
    "arrivals_to",
    "messages_to",
    "read_headers",
    "read_messages",
    "store_message",
]

# Greeting name; given explicitly because aiosmtpd otherwise does a (possibly slow) FQDN lookup.
_SERVER_NAME = "nps-smtp-sink"


def store_message(mail_dir: Path, raw: bytes) -> Path:
    """Write one message atomically: a reader sees either no file or the whole message."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    final = mail_dir / f"{stamp}-{uuid.uuid4().hex}.eml"
    partial = mail_dir / f".{final.name}.tmp"
    with partial.open("wb") as out:
        out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(final)
    return final


class MailboxHandler:
    """aiosmtpd handler storing the raw DATA bytes of each accepted message under `mail_dir`."""

    def __init__(self, mail_dir: Path | str) -> None:
        self.mail_dir = Path(mail_dir)
        self.mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        await asyncio.to_thread(store_message, self.mail_dir, raw)
        return "250 Message accepted for delivery"


class SmtpSink:
    """The sink on a background thread (aiosmtpd's Controller), for tests and in-process use."""

    def __init__(self, mail_dir: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mail_dir = Path(mail_dir)
        self.host = host
        # The Controller probes its own port after binding, so it cannot be given 0.
        self.port = port or free_port(host)
        self._controller = Controller(
            MailboxHandler(self.mail_dir),
            hostname=host,
            port=self.port,
            server_hostname=_SERVER_NAME,
        )

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def read_messages(mail_dir: Path | str) -> list[EmailMessage]:
    """Every stored message, oldest first (file names start with the UTC time of arrival)."""
    parser = BytesParser(_class=EmailMessage, policy=default_policy)
    return [parser.parsebytes(path.read_bytes()) for path in _stored(mail_dir)]


def read_headers(mail_dir: Path | str) -> list[EmailMessage]:
    """Every stored message's headers (no body), oldest first: enough to count messages by a header,
    in a fraction of the time a full parse of thousands takes."""
    parser = BytesHeaderParser(_class=EmailMessage, policy=default_policy)
    headers: list[EmailMessage] = []
    for path in _stored(mail_dir):
        with path.open("rb") as stored:
            headers.append(parser.parse(stored))
    return headers


#: The To header of each stored message read so far. A stored file never changes (it appears whole,
#: see store_message), so its header is read once however often the mailbox is polled.
_recipients: dict[Path, str] = {}


def messages_to(mail_dir: Path | str, address: str) -> list[EmailMessage]:
    """The stored messages whose To header contains ``address``, oldest first.

    Only these are parsed in full; of the others only the headers, once per file. Parsing a whole
    mailbox of 1,500 messages takes seconds, and a test polls for its email every tenth of a second.
    """
    parser = BytesParser(_class=EmailMessage, policy=default_policy)
    matched: list[EmailMessage] = []
    for path in _stored(mail_dir):
        if address in _recipients_of(path):
            matched.append(parser.parsebytes(path.read_bytes()))
    return matched


def arrivals_to(mail_dir: Path | str, address: str) -> list[tuple[datetime, str]]:
    """(when it arrived, its To header) of each stored message whose To contains ``address``,
    oldest first: when the sink received it, whoever sent it (the file name starts with the time)."""
    arrived: list[tuple[datetime, str]] = []
    for path in _stored(mail_dir):
        recipients = _recipients_of(path)
        if address in recipients:
            stamp = datetime.strptime(path.name.split("-", 1)[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
            arrived.append((stamp, recipients))
    return arrived


def _recipients_of(path: Path) -> str:
    """A stored message's To header, read from the file once (see :data:`_recipients`)."""
    recipients = _recipients.get(path)
    if recipients is None:
        with path.open("rb") as stored:
            headers = BytesHeaderParser(policy=default_policy).parse(stored)
        recipients = _recipients[path] = str(headers["To"])
    return recipients


def _stored(mail_dir: Path | str) -> list[Path]:
    """The stored messages' files, oldest first; a message being written (``.<name>.tmp``) is not one."""
    directory = Path(mail_dir)
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".eml") and not e.name.startswith("."))
    return [directory / name for name in names]


async def serve(mail_dir: Path, host: str, port: int) -> None:
    """Run the sink until SIGTERM or SIGINT."""
    handler = MailboxHandler(mail_dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname=_SERVER_NAME, enable_SMTPUTF8=True, loop=loop), host=host, port=port
    )
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"smtp sink listening on {host}:{port}, storing mail in {mail_dir}", flush=True)
    async with server:
        await stopping.wait()
    print("smtp sink stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m libs.devstack.smtp_sink", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"), help="where .eml files go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.dir, args.host, args.port))


if __name__ == "__main__":
    main()
