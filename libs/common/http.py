"""HTTP edge pieces every service uses: errors as JSON in one shape, a body-size limit, JSON bodies
sent without a JSON content type, NUL bytes refused, the OpenAPI error responses, the API docs
served offline, and health. The dependencies routes take (settings, tenant, unit of work) are in
:mod:`libs.common.deps`."""

from __future__ import annotations

import http
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common import tracing
from libs.common.kafka import is_transient
from libs.common.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait when a dependency (database, broker) is unreachable.
RETRY_AFTER_SECONDS = 5


class Problem(BaseModel):
    field: str = Field(description="where: `body.note`, `query.customer`, `[2].data.email`")
    message: str


class ErrorBody(BaseModel):
    """Every non-2xx JSON answer of every service."""

    error: str = Field(description="a specific snake_case code, e.g. `not_found`, `invalid_request`")
    detail: str = Field(description="what went wrong, for a person to read")
    problems: list[Problem] = Field(
        default_factory=list, description="one entry per problem with the request; may be empty"
    )


#: The code of each status when a route gives none of its own.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def status_code_name(status: int) -> str:
    if status in _CODES:
        return _CODES[status]
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return "client_error" if status < 500 else "server_error"
    return "_".join("".join(ch if ch.isalnum() else " " for ch in phrase.lower()).split())


def _text(detail: Any) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail, default=str)


def error_body(error: str, detail: Any, problems: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """The error shape: ``{"error": code, "detail": one string, "problems": [{field, message}]}``.

    Raise it as ``HTTPException(status, error_body(...))`` to give a code of one's own; without a
    detail of the problems, ``detail`` joins them as ``field: message; field: message``.
    """
    listed = [{"field": str(p["field"]), "message": str(p["message"])} for p in problems]
    text = _text(detail) if detail else "; ".join(f"{p['field']}: {p['message']}" for p in listed)
    return {"error": error, "detail": text, "problems": listed}


def invalid_request(described: str, prefix: str = "body.") -> dict[str, Any]:
    """The 422 body for a route's own check described as ``field: message; field: message``
    (as ``describe_validation_error`` writes it): one problem per part, the field under ``prefix``."""
    problems = []
    for part in described.split("; "):
        location, separator, message = part.partition(": ")
        if separator and location and " " not in location:
            problems.append({"field": f"{prefix}{location}", "message": message})
        else:
            problems.append({"field": prefix.rstrip("."), "message": part})
    return error_body("invalid_request", described, problems)


def _field(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location)


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type", "list_type"}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = []
    for item in errors[:50]:
        location = tuple(item.get("loc", ()))
        if item.get("type") == "json_invalid":
            reason = (item.get("ctx") or {}).get("error") or item.get("msg")
            return JSONResponse(
                status_code=400,
                content=error_body("invalid_json", f"body is not valid JSON: {reason}"),
            )
        content_type = request.headers.get("content-type", "")
        if location == ("body",) and item.get("type") in _NOT_AN_OBJECT and not _is_json(content_type):
            return JSONResponse(
                status_code=415,
                content=error_body(
                    "unsupported_media_type",
                    f"send the body as JSON with 'Content-Type: application/json', "
                    f"not {content_type.partition(';')[0].strip() or 'no content type'!r}",
                ),
            )
        problems.append({"field": _field(location), "message": str(item.get("msg", ""))})
    return JSONResponse(status_code=422, content=error_body("invalid_request", "", problems))


def _allowed_methods(request: Request) -> str:
    """Every method any route allows for this path: one path is often several routes."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    # FastAPI keeps included routers as branches; this walks the routes they hold.
    for route in iter_route_contexts(request.app.routes):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's class: routing raises it for 404/405; FastAPI's HTTPException is a subclass.
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    if isinstance(detail, dict) and "error" in detail:
        content = error_body(str(detail["error"]), detail.get("detail"), detail.get("problems") or ())
    else:
        content = error_body(
            status_code_name(exc.status_code), detail or http.HTTPStatus(exc.status_code).phrase
        )
    return JSONResponse(status_code=exc.status_code, content=content, headers=headers or None)


def _transient(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(_transient(inner) for inner in error.exceptions)
    cause: BaseException | None = error
    for _ in range(5):
        if cause is None:
            return False
        if is_transient(cause):
            return True
        cause = cause.__cause__
    return False


def unhandled_error(request: Request, error: BaseException) -> JSONResponse:
    """503 with ``Retry-After`` when the database or the broker is out of reach, else 500; the
    body never carries a traceback or SQL, the log does."""
    route = getattr(request.scope.get("route"), "path", "unmatched")
    if _transient(error):
        log.warning(
            "http.dependency_unavailable",
            extra={"method": request.method, "route": route, "error": type(error).__name__},
        )
        return JSONResponse(
            status_code=503,
            content=error_body(
                "unavailable", "a service this one depends on is out of reach; try again shortly"
            ),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    log.error("http.unhandled", exc_info=error, extra={"method": request.method, "route": route})
    return JSONResponse(
        status_code=500, content=error_body("internal_error", "something went wrong on our side")
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    return unhandled_error(request, exc)


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
                    raise _TooLarge(self.max_bytes)
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


class _TooLarge(HTTPException):
    """Raised while the body is read: FastAPI passes HTTPExceptions on, so a route reading its
    body still answers 413 in the error shape."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, error_body("payload_too_large", f"request body exceeds {max_bytes} bytes"))


class RequestMetrics:
    """Counts and times requests by route template, and answers what escapes the routes with
    :func:`unhandled_error` (a plain ASGI middleware: exceptions raised while the body is read,
    such as the size limit's, pass through it unchanged)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _TooLarge:
            raise
        except Exception as error:
            if response_started:
                raise
            await unhandled_error(Request(scope), error)(scope, receive, tracking_send)
        finally:
            # Label by route template, never the raw path: paths carry survey tokens and ids.
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.http_requests.labels(method, path, str(status)).inc()
            self.metrics.http_seconds.labels(method, path).observe(time.perf_counter() - started)


class TraceRequests:
    """One server span per request, continuing the caller's W3C ``traceparent`` / ``tracestate``
    (a malformed one is ignored: the request starts a trace of its own). Named and labelled by the
    route template, never the raw path, which carries survey tokens and ids."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        method = scope["method"]
        with tracing.span(method, parent=carrier, kind=tracing.SpanKind.SERVER) as span:

            async def tracking_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, tracking_send)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.request.method", method)


_LOOSE_TYPES = {b"", b"application/x-www-form-urlencoded", b"text/plain"}


class JsonWithoutContentType:
    """Takes a JSON object or array as JSON when it comes with no JSON content type.

    ``curl -d '{...}'`` sends ``application/x-www-form-urlencoded``; other clients send
    ``text/plain`` or nothing. Such a body that parses as a JSON object or array is passed on as
    ``application/json``, so every JSON endpoint accepts it: accepting is friendlier than refusing
    what is plainly JSON. A body that does not parse is left as it is: real form posts (the survey
    pages) stay forms, and a JSON endpoint answers it with 415 ``unsupported_media_type`` naming
    ``Content-Type: application/json``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        content_type = next((value for name, value in headers if name == b"content-type"), b"")
        if content_type.partition(b";")[0].strip().lower() not in _LOOSE_TYPES:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _is_json_document(body):
            headers = [(name, value) for name, value in headers if name != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_json_document(body: bytes) -> bool:
    text = body.strip()
    if not text or text[:1] not in (b"{", b"["):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


_NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def _nul_locations(value: Any, location: tuple[str | int, ...], depth: int = 0) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield location
    elif depth < 32 and isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                yield (*location, key)
            yield from _nul_locations(item, (*location, key), depth + 1)
    elif depth < 32 and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*location, index), depth + 1)


async def reject_nul_bytes(request: Request) -> None:
    """Every route, before anything else: a NUL in a path or query parameter or in a JSON body
    string is refused with 422 naming the field. Postgres cannot store NUL in text, and no field
    means one. The survey's HTML pages are left to handle their own input."""
    route = request.scope.get("route")
    response_class = getattr(route, "response_class", None)
    if isinstance(response_class, type) and issubclass(response_class, HTMLResponse):
        return
    locations: list[tuple[Any, ...]] = [
        ("path", name) for name, value in request.path_params.items() if "\x00" in str(value)
    ]
    locations += [
        ("query", name) for name, value in request.query_params.multi_items() if "\x00" in name + value
    ]
    if (
        isinstance(route, APIRoute)
        and route.body_field is not None
        and _is_json(request.headers.get("content-type", ""))
    ):
        try:
            body = await request.json()
        except ValueError:
            body = None
        locations += list(_nul_locations(body, ("body",)))
    if locations:
        raise RequestValidationError(
            [{"type": "string_nul", "loc": loc, "msg": _NUL_MESSAGE, "input": None} for loc in locations[:50]]
        )


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def error_responses(*statuses: int, media_type: str = "application/json") -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own error answers, in the shared shape (or as HTML pages)."""
    if media_type == "application/json":
        return {status: {"model": ErrorBody, "description": _describe(status)} for status in statuses}
    return {
        status: {"description": _describe(status), "content": {media_type: {"schema": {"type": "string"}}}}
        for status in statuses
    }


def _describe(status: int) -> str:
    return {
        400: "the body is not valid JSON (`invalid_json`)",
        401: "no API key, or not a valid one (`unauthorized`)",
        404: "no such resource (`not_found`)",
        409: "the change conflicts with the current state (`conflict`)",
        413: "the body is too large (`payload_too_large`)",
        415: "the body is not in a content type this route takes (`unsupported_media_type`)",
        422: "the request is not valid: one problem per field (`invalid_request`)",
        429: "too many requests from one client (`too_many_requests`); see Retry-After",
        500: "an error of ours (`internal_error`)",
        503: "the database or the broker is out of reach (`unavailable`); see Retry-After",
    }.get(status, http.HTTPStatus(status).phrase)


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _describe(status),
        "content": {"application/json": {"schema": dict(_ERROR_REF)}},
    }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the error handlers answer: the shared error body
    instead of FastAPI's ``HTTPValidationError``, and the statuses any route can give."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "delete", "patch"):
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for declared, response in list(responses.items()):
                content = response.get("content", {}).get("application/json", {})
                if "HTTPValidationError" in json.dumps(content):
                    responses[declared] = _error_response(int(declared))
            parameters = operation.get("parameters", [])
            body = operation.get("requestBody")
            wanted = [500, 503]
            if parameters or body:
                wanted.append(422)
            if body:
                wanted += [413, 415]
                if "application/json" in body.get("content", {}):
                    wanted.append(400)
            if operation.get("security"):
                wanted.append(401)
            if any(parameter.get("in") == "path" for parameter in parameters):
                wanted.append(404)
            for status in sorted(wanted):
                responses.setdefault(str(status), _error_response(status))
    return schema


class ReadyBody(BaseModel):
    ready: bool
    checks: dict[str, str]


_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def _install_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from files the platform ships: the docs work offline, no CDN."""
    app.mount("/docs/assets", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            redoc_js_url=f"{root}/docs/assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs/assets/favicon.png",
            with_google_fonts=False,
        )


def install(
    app: FastAPI,
    *,
    service: str,
    metrics: ServiceMetrics,
    max_body_bytes: int,
    check_dependencies: Callable[[], Awaitable[dict[str, str]]],
) -> None:
    """Error handlers, size limit, JSON without a content type, request metrics, the API docs,
    /healthz, /readyz and /metrics. The app is made with ``docs_url=None, redoc_url=None``;
    ``check_dependencies`` answers /readyz with one ``"ok"`` or reason per dependency."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # The last resort, for what escapes the middleware below (Starlette's ServerErrorMiddleware).
    app.add_exception_handler(Exception, _unhandled)

    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(JsonWithoutContentType)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    # Outermost: the span covers the whole request, the size limit's refusals included.
    app.add_middleware(TraceRequests)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _install_docs(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up and serving."""
        return {"status": "ok", "service": service}

    @app.get(
        "/readyz",
        tags=["ops"],
        responses={
            200: {"description": "ready", "model": ReadyBody},
            503: {"description": "a dependency is out of reach", "model": ReadyBody},
        },
    )
    async def readyz() -> JSONResponse:
        """Readiness: the database and the Kafka broker are reachable."""
        checks = await check_dependencies()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        # Readiness as a metric too, so an alert does not depend on something probing /readyz.
        # Each check gives up after 3 s, so a scrape (10 s timeout by default) still answers.
        for dependency, answer in (await check_dependencies()).items():
            metrics.ready.labels(dependency).set(1 if answer == "ok" else 0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
