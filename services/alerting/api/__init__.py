"""HTTP routes of alerting, one module per resource: ``cases`` (the REST API of follow-up cases)."""

from fastapi import APIRouter

from services.alerting.api import cases

#: In the order they are wired, which is the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [cases.router]

__all__ = ["ROUTERS"]
