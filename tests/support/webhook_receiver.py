"""A real HTTP/1.1 receiver of outbound webhooks on this machine, for tests and the benchmark.

Each path has a script of answers, used in turn (the last one repeats): ``200``, ``500``, ``hang``
(never answers), ``huge`` (200 with a 10 MB body), ``redirect:<url>`` (302 to that URL). Every
request is recorded with its headers and raw body, so a test verifies the signature with the
``standardwebhooks`` library exactly as a tenant's receiver would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook

HUGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verify(self, secret: str) -> Any:
        """The payload, if ``secret`` signed it (raises ``WebhookVerificationError`` otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    port: int = 0
    scripts: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    #: Seconds each connection waits before its request is read (a busy receiver): requests on
    #: their way when a sender dies are then not taken, as on a real network.
    delay: float = 0.0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: str) -> str:
        self.scripts[path] = list(answers)
        return self.url(path)

    def at(self, path: str) -> list[Received]:
        return [item for item in self.received if item.path == path]

    def _next_answer(self, path: str) -> str:
        answers = self.scripts.get(path, ["200"])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.delay:
                # Before the request counts as received: a sender killed meanwhile has sent it, but
                # the receiver never takes it.
                await asyncio.sleep(self.delay)
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = request_line.split(" ")[1]
            self.received.append(Received(path, headers, body))
            answer = self._next_answer(path)
            if answer == "hang":
                await self._stopping.wait()
                return
            if answer == "huge":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % HUGE_BYTES
                )
                chunk = b"x" * 65536
                for _ in range(HUGE_BYTES // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
                return
            if answer.startswith("redirect:"):
                location = answer.removeprefix("redirect:").encode()
                writer.write(
                    b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            else:
                status = int(answer)
                text = b"thanks" if status < 400 else b"receiver_unavailable"
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (status, len(text), text)
                )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiving(delay: float = 0.0) -> AsyncIterator[Receiver]:
    receiver = Receiver(delay=delay)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver._stopping.set()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
