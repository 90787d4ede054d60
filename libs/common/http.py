"""HTTP edge pieces every service uses: errors as JSON, a body-size limit, auth and health."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.db import UnitOfWork
from libs.common.tenancy import TenantContext

if TYPE_CHECKING:
    from libs.common.service import Runtime


def error_body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors()[:50]:
        if item.get("type") == "json_invalid":
            return JSONResponse(
                status_code=400,
                content=error_body("invalid_json", f"body is not valid JSON: {item.get('msg')}"),
            )
        problems.append({"field": _field(item.get("loc", ())), "message": item.get("msg", "")})
    return JSONResponse(status_code=422, content=error_body("invalid_request", problems))


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's class: routing raises it for 404/405; FastAPI's HTTPException is a subclass.
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, dict) and "error" in detail:
        return JSONResponse(status_code=exc.status_code, content=detail, headers=exc.headers)
    names = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "too_many_requests",
    }
    return JSONResponse(
        status_code=exc.status_code,
        content=error_body(names.get(exc.status_code, "error"), detail),
        headers=exc.headers,
    )


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(send)
                return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content=error_body("payload_too_large", f"request body exceeds {self.max_bytes} bytes"),
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def require_tenant(request: Request) -> TenantContext:
    """Every tenant-scoped route: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    presented = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if presented is None and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    if not presented:
        raise HTTPException(
            401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    tenant = await runtime_of(request).verifier.verify(presented)
    if tenant is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return tenant


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    async with runtime_of(request).database.uow() as uow:
        yield uow


Tenant = Annotated[TenantContext, Depends(require_tenant)]
UoW = Annotated[UnitOfWork, Depends(unit_of_work)]


def install(app: FastAPI, runtime: Runtime) -> None:
    """Error handlers, size limit, request metrics, /healthz, /readyz and /metrics."""
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    metrics = runtime.metrics

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # Label by route template, never the raw path: paths carry survey tokens and ids.
        path = getattr(route, "path", "unmatched")
        metrics.http_requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.http_seconds.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and serving."""
        return {"status": "ok", "service": runtime.definition.name}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Readiness: the database and the Kafka broker are reachable."""
        checks = await runtime.check_dependencies()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
