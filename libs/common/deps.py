"""The dependencies every api module takes: the settings, the tenant and the unit of work.

App assembly (:func:`libs.common.app.create_app`) attaches an :class:`Edge` to the app; the
dependencies below are the only readers of it, so a route never reaches into the runtime. Routes
name them by their ``Annotated`` aliases: ``Settings``, ``Tenant``, ``UoW``, and a service's own
settings class through :func:`settings_of`, e.g.
``SurveyConfig = Annotated[SurveySettings, Depends(settings_of(SurveySettings))]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Table

from libs.common.config import ServiceSettings
from libs.common.db import Database, UnitOfWork
from libs.common.tenancy import ApiKeyVerifier, TenantContext

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class Edge:
    """What the routes of one running service may reach, attached to its app at assembly."""

    settings: ServiceSettings
    database: Database[Any]
    verifier: ApiKeyVerifier
    #: People's sessions, in a service with pages; ``None`` elsewhere.
    sessions: Table | None = None


def attach(app: FastAPI, edge: Edge) -> None:
    app.state.edge = edge


def edge_of(request: Request) -> Edge:
    edge = getattr(request.app.state, "edge", None)
    if not isinstance(edge, Edge):
        raise RuntimeError("the app was not assembled by libs.common.app.create_app")
    return edge


def settings_of(kind: type[S]) -> Callable[[Request], S]:
    """The dependency giving the running service's settings as ``kind``, its own settings class.

    The one place the shared settings become a service's: an app started with another service's
    settings fails here, loudly, whatever the route."""

    def settings(request: Request) -> S:
        found = edge_of(request).settings
        if not isinstance(found, kind):
            raise TypeError(f"the service runs with {type(found).__name__}, not {kind.__name__}")
        return found

    settings.__name__ = f"settings_of_{kind.__name__}"
    return settings


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKeyBearer",
    description="The tenant's API key: `Authorization: Bearer <key>`",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader", description="The tenant's API key"
)


async def require_tenant(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> TenantContext:
    """Every tenant-scoped route: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    presented = api_key if api_key is not None else (bearer.credentials.strip() if bearer else None)
    if not presented:
        raise HTTPException(
            401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    tenant = await edge_of(request).verifier.verify(presented)
    if tenant is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return tenant


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork[Any]]:
    """One unit of work per request. A service wanting its repository typed names it in its own
    alias: ``Annotated[UnitOfWork[TheRepository], Depends(unit_of_work)]``."""
    async with edge_of(request).database.uow() as uow:
        yield uow


Settings = Annotated[ServiceSettings, Depends(settings_of(ServiceSettings))]
Tenant = Annotated[TenantContext, Depends(require_tenant)]
UoW = Annotated[UnitOfWork[Any], Depends(unit_of_work)]
