"""Reporting's HTTP routes, one module per part of the report; ``routers`` lists them all."""

from __future__ import annotations

from fastapi import APIRouter

from services.reporting.api import (
    export,
    funnel,
    insight,
    page,
    privacy,
    recommended,
    repurchase,
    revenue,
    stream,
    summary,
    verbatims,
)

routers: list[APIRouter] = [
    summary.router,
    insight.router,
    stream.router,
    verbatims.router,
    export.router,
    funnel.router,
    repurchase.router,
    recommended.router,
    page.router,
    revenue.router,
    privacy.router,
]
