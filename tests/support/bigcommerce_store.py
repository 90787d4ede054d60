"""A local stand-in for BigCommerce's store API: a real HTTP/1.1 server answering
``GET /stores/{hash}/v2/orders/{id}`` and ``GET /stores/{hash}/v3/customers?id:in=…`` with the
published example responses a test gives it, checking the ``X-Auth-Token``, and failing on
request as a store does (a 500, a 429, a 404)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

_ORDER = re.compile(r"^/stores/([A-Za-z0-9]+)/v2/orders/(\d+)$")
_CUSTOMERS = re.compile(r"^/stores/([A-Za-z0-9]+)/v3/customers\?id:in=(\d+)$")


@dataclass
class Store:
    hash: str
    token: str
    orders: dict[str, Any] = field(default_factory=dict)
    customers: dict[str, Any] = field(default_factory=dict)
    #: Statuses the next order requests answer with, in turn, before the order itself.
    failures: list[int] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    #: While set and not released, order requests wait (the store is slow) before being answered.
    hold: asyncio.Event | None = None


@dataclass
class FakeStoreApi:
    stores: dict[str, Store] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            _, target, _ = request_line.split(" ", 2)
            match = _ORDER.match(target)
            held = self.stores[match.group(1)].hold if match and match.group(1) in self.stores else None
            if held is not None:
                await held.wait()
            status, body = self._answer(target, headers.get("x-auth-token"))
            payload = json.dumps(body).encode()
            writer.write(
                b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % (status, len(payload)) + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, target: str, token: str | None) -> tuple[int, Any]:
        order = _ORDER.match(target)
        customers = _CUSTOMERS.match(target)
        match = order or customers
        store = self.stores.get(match.group(1)) if match else None
        if match is None or store is None:
            return 404, {"status": 404, "title": "The requested resource was not found."}
        store.requests.append(target)
        if token != store.token:
            return 401, {"status": 401, "title": "Unauthorized"}
        if order is not None:
            if store.failures:
                failure = store.failures.pop(0)
                return failure, {"status": failure, "title": "failure"}
            found = store.orders.get(order.group(2))
            if found is None:
                return 404, [{"status": 404, "message": "The requested resource was not found."}]
            return 200, found
        assert customers is not None
        return 200, store.customers.get(customers.group(2), {"data": [], "meta": {}})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[FakeStoreApi]:
    api = FakeStoreApi()
    listener = await asyncio.start_server(api.handle, host="127.0.0.1", port=0)
    api.port = listener.sockets[0].getsockname()[1]
    try:
        yield api
    finally:
        listener.close()
        await listener.wait_closed()
