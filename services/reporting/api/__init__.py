"""Reporting's HTTP routes, one module per part of the report; ``routers`` lists them all."""

from __future__ import annotations

from fastapi import APIRouter

from services.reporting.api import export, insight, revenue, stream, summary, verbatims

routers: list[APIRouter] = [
    summary.router,
    insight.router,
    stream.router,
    verbatims.router,
    export.router,
    revenue.router,
]
