"""Chat webhooks against a real HTTP server on this machine: by default it is a private address and
nothing reaches it; allowed (as in local tests), the Slack message arrives as JSON, and what the
server answers decides whether a failed delivery is worth retrying. Over TLS, the connection goes to
the checked address while the certificate is still checked against the host name."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from libs.common.outbound import OutboundError, UnsafeUrl, post_json
from libs.devstack.ports import free_port
from services.alerting.domain.chat import ChatNotice, slack_payload

pytestmark = pytest.mark.integration

SECRET_PATH = "/services/T0000/B0000/sEcReTtOkEn"
KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")  # quick to make, unlike RSA


@dataclass
class Received:
    request_line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    """An HTTP/1.1 server that records each request and answers with ``status`` (or, with
    ``answer=False``, never answers). ``connections`` counts every TCP connection, read or not."""

    status: int = 200
    answer: bool = True
    connections: int = 0
    received: list[Received] = field(default_factory=list)
    port: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(request_line, headers, body))
            if not self.answer:
                await self.stopping.wait()
                return
            reason = b"OK" if self.status < 400 else b"Refused"
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n" % (self.status, reason)
                + b"Connection: close\r\n\r\nok"
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{SECRET_PATH}"


@contextlib.asynccontextmanager
async def serving(server: WebhookServer, tls: ssl.SSLContext | None = None) -> AsyncIterator[WebhookServer]:
    listeners = [await asyncio.start_server(server.handle, host="127.0.0.1", port=0, ssl=tls)]
    server.port = listeners[0].sockets[0].getsockname()[1]
    # `localhost` may resolve to ::1 first: listen there too, on the same port, where there is IPv6.
    with contextlib.suppress(OSError):
        listeners.append(await asyncio.start_server(server.handle, host="::1", port=server.port, ssl=tls))
    try:
        yield server
    finally:
        server.stopping.set()
        for listener in listeners:
            listener.close()
            await listener.wait_closed()


@pytest.fixture
async def webhook_server() -> AsyncIterator[WebhookServer]:
    async with serving(WebhookServer()) as server:
        yield server


@dataclass
class Certificates:
    ca: Path
    localhost: tuple[Path, Path]
    elsewhere: tuple[Path, Path]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA, and two server certificates it signed: one for `localhost`, one for another name."""
    if shutil.which("openssl") is None:
        pytest.fail(
            "needs the openssl command to make test certificates (apt-get install -y openssl)", pytrace=False
        )
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], cwd=folder, check=True, capture_output=True, stdin=subprocess.DEVNULL
        )

    openssl(
        "req", "-x509", *KEY, "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=outbound test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    made = {}
    for name in ("localhost", "elsewhere.example"):
        (folder / f"{name}.ext").write_text(f"subjectAltName=DNS:{name}\n")
        openssl(
            "req", *KEY, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
        )  # fmt: skip
        made[name] = (folder / f"{name}.pem", folder / f"{name}.key")
    return Certificates(folder / "ca.pem", made["localhost"], made["elsewhere.example"])


def server_tls(certificate: tuple[Path, Path], names_seen: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda _socket, name, _context: names_seen.append(name)
    return context


def case_notice() -> ChatNotice:
    return ChatNotice(
        title="New detractor case",
        score=2,
        why="Delivery took three weeks & nobody answered <my> emails",
        touchpoint="checkout",
        customer="Ada Lovelace",
        due_at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
        case_url="https://nps.example/cases/7f1c",
        priority="high",
    )


async def test_a_local_server_is_refused_by_default_and_receives_nothing(
    webhook_server: WebhookServer,
) -> None:
    async with httpx.AsyncClient() as client:
        for url in (webhook_server.url(), webhook_server.url("localhost", "https")):
            with pytest.raises(UnsafeUrl, match=r"not a public address|local name|must use https"):
                await post_json(client, url, slack_payload(case_notice()))
    assert webhook_server.connections == 0
    assert webhook_server.received == []


async def test_the_slack_message_arrives_as_json_when_private_targets_are_allowed(
    webhook_server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    payload = slack_payload(case_notice())
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient() as client:
            status = await post_json(client, webhook_server.url("localhost"), payload, allow_private=True)

    assert status == 200
    [request] = webhook_server.received
    assert request.request_line == f"POST {SECRET_PATH} HTTP/1.1"
    assert request.headers["host"] == f"localhost:{webhook_server.port}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == payload
    assert "Delivery took three weeks &amp; nobody answered &lt;my&gt; emails" in request.body.decode()
    # httpx logs each request with its URL; the webhook's secret path must not be in the logs.
    assert f":{webhook_server.port}/…" in caplog.text
    assert "sEcReTtOkEn" not in caplog.text


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (400, False)]
)
async def test_what_the_server_answers_decides_whether_to_retry(
    webhook_server: WebhookServer, status: int, retryable: bool
) -> None:
    webhook_server.status = status
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError) as failed:
            await post_json(client, webhook_server.url(), {"text": "hi"}, allow_private=True)
    assert failed.value.status == status
    assert failed.value.retryable is retryable
    assert f"answered {status}" in str(failed.value)
    assert "sEcReTtOkEn" not in str(failed.value)
    assert len(webhook_server.received) == 1


async def test_a_server_that_never_answers_times_out_and_is_worth_retrying(
    webhook_server: WebhookServer,
) -> None:
    webhook_server.answer = False
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError, match=r"no answer within 0\.5 s") as failed:
            await post_json(client, webhook_server.url(), {"text": "hi"}, allow_private=True, timeout=0.5)
    assert failed.value.retryable is True
    assert failed.value.status is None
    assert len(webhook_server.received) == 1


async def test_a_closed_port_is_a_connection_error_worth_retrying() -> None:
    closed = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError, match="the connection failed") as failed:
            await post_json(client, closed, {"text": "hi"}, allow_private=True)
    assert failed.value.retryable is True
    assert "sEcReTtOkEn" not in str(failed.value)


async def test_tls_verifies_the_host_name_although_the_connection_goes_to_the_checked_address(
    certificates: Certificates,
) -> None:
    names_seen: list[str | None] = []
    trust = ssl.create_default_context(cafile=certificates.ca)
    async with (
        serving(WebhookServer(), server_tls(certificates.localhost, names_seen)) as server,
        httpx.AsyncClient(verify=trust) as client,
    ):
        status = await post_json(client, server.url("localhost", "https"), {"text": "hi"}, allow_private=True)

    assert status == 200
    # The name went to the server in the TLS handshake, and its certificate was checked against it,
    # although the connection was made to the address resolved and checked before.
    assert names_seen == ["localhost"]
    [request] = server.received
    assert request.headers["host"] == f"localhost:{server.port}"


async def test_a_certificate_for_another_name_is_refused(certificates: Certificates) -> None:
    trust = ssl.create_default_context(cafile=certificates.ca)
    async with serving(WebhookServer(), server_tls(certificates.elsewhere, [])) as server:
        async with httpx.AsyncClient(verify=trust) as client:
            with pytest.raises(OutboundError, match="the connection failed") as failed:
                await post_json(client, server.url("localhost", "https"), {"text": "hi"}, allow_private=True)
        assert server.received == []
    assert "hostname mismatch" in str(failed.value.__cause__).lower()
