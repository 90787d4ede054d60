"""Reporting's HTTP routes, one module per part of the report; ``routers`` lists them all."""

from __future__ import annotations

from fastapi import APIRouter

from services.reporting.api import insight, page, stream, summary

routers: list[APIRouter] = [summary.router, insight.router, stream.router, page.router]
