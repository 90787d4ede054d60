"""HTTP routes of the trigger, one module per resource: ``events`` (intake, decisions, dry run),
``exports`` (the decisions CSV), ``policy``, ``touchpoints``, ``admin`` (tenants and API keys),
``history`` (contact-history import), ``erasure`` (erasures and their receipts), ``privacy`` (retention, a
customer's export) and ``webhooks`` (receivers and the route platforms post to)."""

from fastapi import APIRouter

from services.trigger.api import (
    admin,
    erasure,
    events,
    exports,
    history,
    policy,
    privacy,
    touchpoints,
    webhooks,
)

#: In the order they are wired, which is the order of the OpenAPI document.
ROUTERS: list[APIRouter] = [
    events.router,
    exports.router,
    policy.router,
    touchpoints.router,
    admin.router,
    history.router,
    webhooks.router,
    privacy.router,
    erasure.router,
]

__all__ = ["ROUTERS"]
