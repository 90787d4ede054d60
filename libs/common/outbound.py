"""Outbound HTTP to URLs a tenant configures (chat webhooks). Outbound HTTP refuses private addresses.

A webhook URL is a tenant's input and the services run inside a private network, so a URL naming
an internal address (the cloud metadata service, a database, localhost) would let a tenant reach it
from inside (server-side request forgery). Three defences, each closing a gap the previous leaves:

- ``check_webhook_url`` when the URL is configured: https, a plain host name or a public IP in
  canonical form (``2130706433``, ``0177.0.0.1`` and ``0x7f.1`` all mean 127.0.0.1 to some parsers),
  no user info, no local names;
- ``resolve_public`` when sending: a public name can resolve to a private address, so every address
  the name resolves to must be public;
- ``post_json`` connects to the address that was checked, not to the name again: a DNS answer that
  changes between the check and the connection (rebinding) cannot send it elsewhere. TLS still
  verifies the real host name (``sni_hostname``), and redirects are not followed.

Webhook URLs carry their secret in the path (Slack's ``/services/T…/B…/…``), so no message, log
line or exception here shows more of a URL than ``redact`` does: ``https://hooks.slack.com/…``.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from libs.common import tracing

T = TypeVar("T")

MAX_URL_LENGTH = 2000
MAX_HOST_NAME_LENGTH = 253
_DEFAULT_PORTS = {"https": 443, "http": 80}
# Names that only mean something inside a network (RFC 6761, RFC 6762, RFC 8375, common practice).
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# Controls (C0, DEL, C1) and whitespace: a parser that strips them sees another URL than one that keeps them.
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
# 64:ff9b::/96 is NAT64, ::/96 the deprecated IPv4-compatible form: both carry an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# What a webhook says when it refuses (Slack: ``invalid_token``, ``no_service``): short, and no secret.
_ERROR_CODE = re.compile(r"[a-z][a-z_]{1,59}")
_SHOWN_HOST = re.compile(r"[a-z0-9.:-]{1,253}")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL names a target the platform must not reach; the message says what is wrong with it."""


class OutboundError(Exception):
    """A request that could not be delivered. ``retryable``: a later attempt may succeed (timeouts,
    connection failures, 5xx, 429); otherwise the target refused it (other 4xx, redirects).
    The message names the target only as ``redact`` shows it."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = message
        self.retryable = retryable
        self.status = status
        #: The target's ``Retry-After`` header, as it sent it (a 429 or 503 may say when to come back).
        self.retry_after = retry_after


def redact(url: str) -> str:
    """The scheme and host of a URL, never its path or query: ``https://hooks.slack.com/…``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(an unreadable URL)"
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host or not _SHOWN_HOST.fullmatch(host):
        return "(a URL without a readable host)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}/…"


def is_public_address(address: IpAddress) -> bool:
    """Globally routable and unicast; an IPv6 address carrying an IPv4 one is judged by that one too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _IPV4_COMPATIBLE:
            return False
        embedded = [address.sixtofour, *(address.teredo or ())]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(inner is not None and not is_public_address(inner) for inner in embedded):
            return False
    return address.is_global and not address.is_multicast


def check_webhook_url(url: str, *, allow_private: bool = False) -> str:
    """Check a webhook URL when it is configured and return it normalised (lower-case scheme and
    host, no default port, no fragment). ``allow_private`` (local tests only) also allows http,
    local names and private addresses. Raises ``UnsafeUrl`` naming the problem."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE_CHARACTERS.search(url):
        raise UnsafeUrl("the URL contains a control character, whitespace or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("the URL cannot be read (a malformed host or a port that is not a number)") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise UnsafeUrl(f"the URL must use https, not {scheme or 'no scheme'}")
    if "@" in parts.netloc:
        raise UnsafeUrl("the URL must not carry a user name or password")
    if port == 0:
        raise UnsafeUrl("the URL's port must be between 1 and 65535")
    host = _checked_host(parts.hostname, allow_private=allow_private)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit(SplitResult(scheme, netloc, parts.path or "/", parts.query, ""))


def _checked_host(host: str | None, *, allow_private: bool) -> str:
    if not host:
        raise UnsafeUrl("the URL has no host")
    if not host.isascii():
        raise UnsafeUrl("the host must be ASCII (write an international name in punycode)")
    address = _ip_literal(host)
    if address is not None:
        if not allow_private and not is_public_address(address):
            raise UnsafeUrl(f"the host {address} is not a public address")
        return address.compressed
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > MAX_HOST_NAME_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeUrl(f"the host {name[:80]!r} is not a valid host name")
    if allow_private:
        return name
    if name == "localhost" or name.endswith(_LOCAL_SUFFIXES):
        raise UnsafeUrl(f"the host {name} is a local name")
    if len(labels) == 1:
        raise UnsafeUrl(f"the host {name} has no domain (a single label resolves inside the local network)")
    return name


def _ip_literal(host: str) -> IpAddress | None:
    """The address when ``host`` is an IP in canonical form; None for a host name. Numbers that are
    not canonical (decimal, octal, hex, shortened: what ``inet_aton`` reads) are refused: parsers
    disagree on them, which is how a check is got around."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    last_label = host.removesuffix(".").rsplit(".", 1)[-1]
    try:
        socket.inet_aton(host)
    except OSError:
        if not last_label.isdigit():
            return None
    raise UnsafeUrl(f"the host {host[:80]!r} is an IP address in a non-canonical form")


async def resolve_public(host: str, port: int, *, allow_private: bool = False) -> str:
    """Resolve ``host`` and return one address to connect to. Raises ``UnsafeUrl`` if any address
    it resolves to is not public (unless ``allow_private``): an attacker who controls a name can
    answer with a private address next to a public one, and the client may pick either."""
    loop = asyncio.get_running_loop()
    try:
        answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        # EAI_AGAIN is the resolver's "try again later"; any other answer will not change by itself.
        raise OutboundError(
            f"the host {host} did not resolve ({exc.strerror})", retryable=exc.errno == socket.EAI_AGAIN
        ) from exc
    addresses = list(
        dict.fromkeys(
            str(sockaddr[0])
            for family, _, _, _, sockaddr in answers
            if family in (socket.AF_INET, socket.AF_INET6)
        )
    )
    if not addresses:
        raise OutboundError(f"the host {host} resolved to no IP address", retryable=False)
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not is_public_address(address):
                raise UnsafeUrl(f"the host {host} resolves to {address}, which is not a public address")
    return addresses[0]


# httpx logs every request's full URL at INFO; while post_json sends, the filter below cuts it to redact().
_SENDING_WEBHOOK: contextvars.ContextVar[bool] = contextvars.ContextVar("sending_webhook", default=False)


class _WebhookUrlFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SENDING_WEBHOOK.get() and isinstance(record.args, tuple):
            record.args = tuple(
                redact(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_WebhookUrlFilter())


@dataclass(frozen=True, slots=True)
class Answer:
    """What a target answered: its status and the first bytes of its body (at most what was asked
    for; the rest is never read, so a 10 MB answer costs no more memory than a short one)."""

    status: int
    head: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, object],
    *,
    allow_private: bool = False,
    # A parameter rather than the caller's asyncio.timeout: it bounds httpx's own phases as well as the whole.
    timeout: float = 5.0,  # noqa: ASYNC109
) -> int:
    """POST ``payload`` as JSON to a webhook and return the (2xx) status. The URL is checked, its
    host resolved and checked, and the request sent to the checked address with the host name in
    ``Host`` and in TLS. ``timeout`` bounds the whole exchange, resolution included.

    Raises ``UnsafeUrl`` for a target that must not be reached, ``OutboundError`` for a failed
    delivery (timeouts, connection errors, a non-2xx answer), with ``retryable`` set.

    ``client`` speaks HTTP/1.1 (httpx's default): each request asks for its connection to be closed
    after it (see ``_send``), which HTTP/2 does not allow."""
    body = json.dumps(dict(payload), separators=(",", ":")).encode()
    answer = await post_bytes(
        client, url, body, allow_private=allow_private, timeout=timeout, read_limit=_HINT_BYTES
    )
    if answer.is_success:
        return answer.status
    status = answer.status
    raise OutboundError(
        f"{redact(url)}: answered {status}{_refusal_hint(answer)}",
        retryable=status == 429 or status >= 500,
        status=status,
    )


async def post_bytes(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    allow_private: bool = False,
    timeout: float = 5.0,  # noqa: ASYNC109
    read_limit: int = 0,
) -> Answer:
    """POST ``body`` (JSON) with extra ``headers`` to a webhook, with the same checks as
    :func:`post_json`, and return whatever it answered, at most ``read_limit`` bytes of the body.
    A redirect is an answer like any other (its status is returned), never followed.

    Raises ``UnsafeUrl`` for a target that must not be reached, ``OutboundError`` (retryable) when no
    answer came: a timeout or a connection failure."""
    _, answer = await _guarded(
        url,
        allow_private=allow_private,
        timeout=timeout,
        exchange=lambda checked, address: _send(
            client, checked, address, body, timeout, headers or {}, read_limit
        ),
    )
    return answer


async def _guarded(
    url: str,
    *,
    allow_private: bool,
    timeout: float,  # noqa: ASYNC109 (it bounds the resolution and the exchange together)
    exchange: Callable[[httpx.URL, str], Awaitable[T]],
) -> tuple[str, T]:
    """The guards every outbound request has: the URL checked, its host resolved and the address
    checked, then ``exchange(checked URL, address)`` (which pins the connection to that address),
    all within ``timeout``. Returns the URL as it may be shown (redacted) and the exchange's result.
    A timeout or a connection failure is a retryable ``OutboundError``."""
    checked = httpx.URL(check_webhook_url(url, allow_private=allow_private))
    shown = redact(str(checked))
    try:
        async with asyncio.timeout(timeout):
            port = checked.port or _DEFAULT_PORTS[checked.scheme]
            address = await resolve_public(checked.host, port, allow_private=allow_private)
            return shown, await exchange(checked, address)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise OutboundError(f"{shown}: no answer within {timeout:g} s", retryable=True) from exc
    except httpx.TransportError as exc:
        raise OutboundError(f"{shown}: the connection failed ({type(exc).__name__})", retryable=True) from exc


def _pinned(checked: httpx.URL, address: str) -> tuple[str, dict[str, str]]:
    """The Host header of a request sent to ``address`` instead of the URL's host, and the TLS
    extensions that verify the certificate against the name rather than the address."""
    host = checked.host
    host_header = f"[{host}]" if ":" in host else host
    if checked.port is not None:
        host_header = f"{host_header}:{checked.port}"
    pinned_to_name = checked.scheme == "https" and address != host
    return host_header, {"sni_hostname": host} if pinned_to_name else {}


async def _send(
    client: httpx.AsyncClient,
    checked: httpx.URL,
    address: str,
    body: bytes,
    seconds: float,
    extra_headers: Mapping[str, str],
    read_limit: int,
) -> Answer:
    host_header, extensions = _pinned(checked, address)
    headers = {
        **extra_headers,
        "Host": host_header,
        "Content-Type": "application/json",
        # The pool knows connections by address only: reused for another name on the same address,
        # one would carry that name's request over TLS verified for the first.
        "Connection": "close",
    }
    token = _SENDING_WEBHOOK.set(True)
    # No URL on the span: a webhook's path or query often holds its secret.
    try:
        with tracing.span("POST webhook", kind=tracing.SpanKind.CLIENT) as span:
            # The receiver may continue the trace: W3C headers of the span the request is made in.
            headers.update(tracing.carrier())
            async with client.stream(
                "POST",
                checked.copy_with(host=address),
                content=body,
                headers=headers,
                extensions=extensions,
                follow_redirects=False,
                timeout=seconds,
            ) as response:
                span.set_attribute("http.response.status_code", response.status_code)
                return Answer(response.status_code, await _head(response, read_limit))
    finally:
        _SENDING_WEBHOOK.reset(token)


async def _head(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of the body; the stream is closed without reading the rest (the
    connection is not reused, see ``_send``)."""
    if limit <= 0:
        return b""
    if response.is_stream_consumed:  # a transport that answered with the body already read
        return response.content[:limit]
    head = bytearray()
    async for chunk in response.aiter_raw():
        head += chunk[: limit - len(head)]
        if len(head) >= limit:
            break
    return bytes(head)


_HINT_BYTES = 64


def _refusal_hint(answer: Answer) -> str:
    """A few words on why a webhook refused: its error code when it gives one, never its whole body."""
    if 300 <= answer.status < 400:
        return " (a redirect, not followed)"
    text = answer.head[:_HINT_BYTES].decode("ascii", "replace").strip()
    return f" ({text})" if _ERROR_CODE.fullmatch(text) else ""


#: The most of a fetched JSON document that is read: an API answer past this is refused, not buffered.
MAX_FETCHED_BYTES = 1_000_000


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    allow_private: bool = False,
    timeout: float = 10.0,  # noqa: ASYNC109 (as post_json: it bounds httpx's phases as well)
    max_bytes: int = MAX_FETCHED_BYTES,
) -> object:
    """GET a JSON document from a URL a tenant's settings lead to (a store's API) with the same
    guards as ``post_json``: the URL checked, the host resolved and checked, the connection pinned
    to the checked address, no redirects, ``timeout`` over the whole exchange; and at most
    ``max_bytes`` read. ``headers`` (an API token) are sent and never shown in errors or logs.

    Raises ``UnsafeUrl`` or ``OutboundError`` (``retryable`` for timeouts, connection failures,
    5xx and 429, with the ``Retry-After`` it sent; not for other statuses, nor for a body that is
    too large or not JSON)."""
    shown, (status, retry_after, body) = await _guarded(
        url,
        allow_private=allow_private,
        timeout=timeout,
        exchange=lambda checked, address: _get(client, checked, address, headers, timeout, max_bytes),
    )
    if not 200 <= status < 300:
        raise OutboundError(
            f"{shown}: answered {status}",
            retryable=status == 429 or status >= 500,
            status=status,
            retry_after=retry_after,
        )
    if body is None:
        raise OutboundError(
            f"{shown}: the answer is larger than {max_bytes} bytes", retryable=False, status=status
        )
    try:
        return json.loads(body)
    except ValueError:
        raise OutboundError(f"{shown}: the answer is not JSON", retryable=False, status=status) from None


async def _get(
    client: httpx.AsyncClient,
    checked: httpx.URL,
    address: str,
    extra_headers: Mapping[str, str],
    seconds: float,
    max_bytes: int,
) -> tuple[int, str | None, bytes | None]:
    """(status, Retry-After, body); the body is None when it is longer than ``max_bytes``."""
    host_header, extensions = _pinned(checked, address)
    headers = {**extra_headers, "Host": host_header, "Accept": "application/json", "Connection": "close"}
    token = _SENDING_WEBHOOK.set(True)
    try:
        with tracing.span("GET outbound", kind=tracing.SpanKind.CLIENT) as span:
            headers.update(tracing.carrier())
            async with client.stream(
                "GET",
                checked.copy_with(host=address),
                headers=headers,
                extensions=extensions,
                follow_redirects=False,
                timeout=seconds,
            ) as response:
                span.set_attribute("http.response.status_code", response.status_code)
                retry_after = response.headers.get("Retry-After")
                if not response.is_success:
                    return response.status_code, retry_after, b""
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        return response.status_code, retry_after, None
                return response.status_code, retry_after, body
    finally:
        _SENDING_WEBHOOK.reset(token)
