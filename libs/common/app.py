"""App assembly: the FastAPI app of a :class:`~libs.common.service.Runtime`, with the shared HTTP
edge (:mod:`libs.common.http`) and what the routes' dependencies read (:mod:`libs.common.deps`).
``python -m services.<name> [serve|migrate]`` ends up in :func:`main`.

The edges are wired one way: this module knows the runtime and the HTTP pieces; neither knows it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Depends, FastAPI

from libs.common import deps, http, tracing, web
from libs.common.config import ServiceSettings
from libs.common.logs import configure_logging
from libs.common.service import Runtime, ServiceDefinition

# The runtime's logger: "migrations.done" has always been logged under it.
log = logging.getLogger("libs.common.service")

S = TypeVar("S", bound=ServiceSettings)


def create_app(runtime: Runtime) -> FastAPI:
    definition = runtime.definition

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=definition.title,
        description=definition.description,
        version="1.0",
        lifespan=lifespan,
        # Served from the platform's own files by http.install: the defaults load from a CDN.
        docs_url=None,
        redoc_url=None,
        # A redirect to the added or dropped slash would echo the request's Host header.
        redirect_slashes=False,
        dependencies=[Depends(http.reject_nul_bytes)],
        # FastAPI's own spans record the raw path and query, which carry survey tokens and ids;
        # http.TraceRequests makes the request's span, named by the route template. Its metrics and
        # logs stay off too: /metrics is Prometheus, and logs never carry exception messages.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    deps.attach(
        app,
        deps.Edge(
            settings=runtime.settings,
            database=runtime.database,
            verifier=runtime.verifier,
            sessions=definition.sessions,
        ),
    )
    http.install(
        app,
        service=definition.name,
        metrics=runtime.metrics,
        max_body_bytes=runtime.settings.max_body_bytes,
        check_dependencies=runtime.check_dependencies,
    )
    if definition.sessions is not None:
        web.install(app)
    for router in definition.routers:
        app.include_router(router)
    return app


def main(build: Callable[[S], ServiceDefinition], settings_class: type[S]) -> None:
    """Entry point of ``python -m services.<name> [serve|migrate]``."""
    import uvicorn

    settings = settings_class()
    definition = build(settings)
    configure_logging(definition.name, settings.log_level)
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    runtime = Runtime(definition, settings)
    if command == "migrate" or settings.migrate_on_start:
        runtime.migrate()
        log.info("migrations.done", extra={"service": definition.name})
    if command == "migrate":
        return
    if command != "serve":
        raise SystemExit(f"unknown command {command!r}; use 'serve' or 'migrate'")
    tracing.configure(definition.name)
    try:
        uvicorn.run(create_app(runtime), **server_options(settings))
    finally:
        tracing.shutdown()


def server_options(settings: ServiceSettings) -> dict[str, Any]:
    """How uvicorn serves a service (``uvicorn.run`` / ``uvicorn.Config`` keywords)."""
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
