"""HTTP routes of alerting, one module per resource: ``cases`` (the REST API of follow-up cases),
``routing`` (desk settings and routing rules), ``desk_api`` (the case desk's actions over REST),
``desk`` (the case desk's pages), ``desk_people`` (the desk's People page, for admins), ``people``
(users and teams, REST), ``webhooks`` (outbound webhook endpoints and their delivery log),
``signin`` (the sign-in pages people use) and ``privacy`` (a customer's data, for their export)."""

from fastapi import APIRouter

from services.alerting.api import (
    cases,
    desk,
    desk_api,
    desk_people,
    people,
    privacy,
    routing,
    signin,
    webhooks,
)

#: In the order they are wired, which is the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [
    cases.router,
    desk_api.router,
    routing.router,
    people.router,
    webhooks.router,
    signin.router,
    desk_people.router,
    desk.router,
    privacy.router,
]

__all__ = ["ROUTERS"]
