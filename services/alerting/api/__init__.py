"""HTTP routes of alerting, one module per resource: ``cases`` (the REST API of follow-up cases),
``routing`` (desk settings and routing rules)."""

from fastapi import APIRouter

from services.alerting.api import cases, routing

#: In the order they are wired, which is the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [cases.router, routing.router]

__all__ = ["ROUTERS"]
