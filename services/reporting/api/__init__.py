"""Reporting's HTTP routes, one module per part of the report; ``routers`` lists them all."""

from __future__ import annotations

from fastapi import APIRouter

from services.reporting.api import page, summary

routers: list[APIRouter] = [summary.router, page.router]
