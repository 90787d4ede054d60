"""HTTP routes of alerting, one module per resource: ``cases`` (the REST API of follow-up cases),
``routing`` (desk settings and routing rules), ``desk_api`` (the case desk's actions over REST) and ``desk``
(the case desk's pages)."""

from fastapi import APIRouter

from services.alerting.api import cases, desk, desk_api, routing

#: In the order they are wired, which is the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [cases.router, desk_api.router, routing.router, desk.router]

__all__ = ["ROUTERS"]
