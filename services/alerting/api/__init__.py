"""HTTP routes of alerting, one module per resource: ``cases`` (the REST API of follow-up cases),
``people`` (users and teams, REST) and ``signin`` (the sign-in pages people use)."""

from fastapi import APIRouter

from services.alerting.api import cases, people, signin

#: In the order they are wired, which is the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [cases.router, people.router, signin.router]

__all__ = ["ROUTERS"]
